// Command expandable-provisioner gives the test Kubernetes's nodes volumes that really grow. For
// each PersistentVolumeClaim of its StorageClass that the scheduler has placed on a node, it
// mounts a tmpfs of the claim's size under the state dir and offers it as a local
// PersistentVolume bound to the claim. When a claim asks for more, the file system is remounted
// with the new size under the running pod (statvfs shows it at once) and the volume and the claim
// report the new capacity: the work a CSI driver and its external resizer do on a real cluster.
// tmpfs because this VM refuses online ext4 growth (resize2fs of a mounted loop device: "Permission
// denied to resize filesystem"), and a volume in use cannot be unmounted to grow offline; tests
// keep little data, and it lives as long as the mount (until `down`). Started by
// scripts/testenv.sh up --nodes (see testenv/README.md); it polls every second, plenty for tests.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// provisionedBy marks the volumes this program made, and no other, as its own to grow.
const provisionedBy = "koru.dev/expandable"

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the test Kubernetes")
	dir := flag.String("dir", "", "where the volumes' mount points go")
	class := flag.String("class", "expandable", "the StorageClass whose claims this provisioner serves")
	flag.Parse()
	if *kubeconfig == "" || *dir == "" {
		log.Fatal("--kubeconfig and --dir are required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatalf("state dir: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	p := provisioner{client: client, dir: *dir, class: *class}
	log.Printf("expandable-provisioner ready: class %s, volumes in %s", *class, *dir)
	for {
		if err := p.sync(ctx); err != nil && ctx.Err() == nil {
			log.Printf("sync: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

type provisioner struct {
	client *kubernetes.Clientset
	dir    string
	class  string
}

// sync provisions the claims placed on a node and grows the bound ones that ask for more.
func (p *provisioner) sync(ctx context.Context) error {
	claims, err := p.client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range claims.Items {
		pvc := &claims.Items[i]
		if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != p.class || pvc.DeletionTimestamp != nil {
			continue
		}
		want := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		if pvc.Spec.VolumeName == "" {
			node := pvc.Annotations["volume.kubernetes.io/selected-node"]
			if node != "" {
				if err := p.provision(ctx, pvc, node, want); err != nil {
					log.Printf("provisioning %s/%s: %v", pvc.Namespace, pvc.Name, err)
				}
			}
			continue
		}
		have, known := pvc.Status.Capacity[corev1.ResourceStorage]
		if pvc.Status.Phase == corev1.ClaimBound && known && want.Cmp(have) > 0 {
			if err := p.expand(ctx, pvc, want); err != nil {
				log.Printf("expanding %s/%s: %v", pvc.Namespace, pvc.Name, err)
			}
		}
	}
	return nil
}

func (p *provisioner) mountPoint(volume string) string {
	return filepath.Join(p.dir, volume)
}

// provision makes the claim's file system on `node` and a PersistentVolume bound to the claim.
func (p *provisioner) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim, node string, want resource.Quantity) error {
	name := "pvc-" + string(pvc.UID)
	if _, err := p.client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{}); err == nil {
		return nil
	}
	mount := p.mountPoint(name)
	if err := os.MkdirAll(mount, 0o755); err != nil {
		return err
	}
	if !mounted(mount) {
		if err := run("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", want.Value()), "tmpfs", mount); err != nil {
			return err
		}
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": provisionedBy},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: want},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              p.class,
			ClaimRef: &corev1.ObjectReference{
				APIVersion: "v1",
				Kind:       "PersistentVolumeClaim",
				Namespace:  pvc.Namespace,
				Name:       pvc.Name,
				UID:        pvc.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				Local: &corev1.LocalVolumeSource{Path: mount},
			},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{node},
				}}}},
			}},
		},
	}
	if _, err := p.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		return err
	}
	log.Printf("provisioned %s (%s on %s) for %s/%s", name, want.String(), node, pvc.Namespace, pvc.Name)
	return nil
}

// expand grows the claim's file system to `want` under whoever uses it, then reports it on the
// volume and the claim.
func (p *provisioner) expand(ctx context.Context, pvc *corev1.PersistentVolumeClaim, want resource.Quantity) error {
	pv, err := p.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if pv.Annotations["pv.kubernetes.io/provisioned-by"] != provisionedBy {
		return nil
	}
	mount := p.mountPoint(pv.Name)
	if err := run("mount", "-o", fmt.Sprintf("remount,size=%d", want.Value()), mount); err != nil {
		return err
	}
	pv.Spec.Capacity[corev1.ResourceStorage] = want
	if _, err := p.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
		return err
	}
	pvc.Status.Capacity[corev1.ResourceStorage] = want
	pvc.Status.Conditions = nil
	pvc.Status.AllocatedResourceStatuses = nil
	if _, err := p.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		return err
	}
	log.Printf("expanded %s to %s for %s/%s", pv.Name, want.String(), pvc.Namespace, pvc.Name)
	return nil
}

func mounted(path string) bool {
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if fields := strings.Fields(line); len(fields) > 1 && fields[1] == path {
			return true
		}
	}
	return false
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

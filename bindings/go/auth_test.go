package koru_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	koru "github.com/koru-delta/go-client"
)

// signToken makes a data-plane JWT (EdDSA) with the claims koru-dataplane checks.
func signToken(t *testing.T, key ed25519.PrivateKey, cluster, scope string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now().Unix()
	signing := enc(map[string]string{"alg": "EdDSA", "typ": "JWT"}) + "." + enc(map[string]any{
		"sub": "go-test", "cluster": cluster, "aud": "koru-dataplane:" + cluster, "jti": "t-" + scope,
		"scope": scope, "iat": now, "exp": now + 600,
	})
	return signing + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(signing)))
}

func TestTokens(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemPath := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(pemPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "127.0.0.1:0", "--auth-public-key", pemPath, "--cluster-id", "c1")
	write, read := signToken(t, priv, "c1", "write"), signToken(t, priv, "c1", "read")

	anonymous, _ := koru.Connect(s.URL)
	if _, err := anonymous.Get("a", "b"); !errors.Is(err, koru.ErrUnauthorized) {
		t.Fatalf("no token: %v", err)
	}
	bearer, _ := koru.Connect(s.URL, koru.WithToken(write))
	if _, err := bearer.Put("a", "b", 1); err != nil {
		t.Fatalf("bearer: %v", err)
	}
	// The token in the URL's userinfo goes as Basic, which the server reads as that bearer token.
	u, _ := url.Parse(s.URL)
	u.User = url.UserPassword("token", read)
	basic, err := koru.Connect(u.String())
	if err != nil {
		t.Fatal(err)
	}
	if basic.URL() != s.URL {
		t.Fatalf("URL() %q keeps the credentials", basic.URL())
	}
	if e, err := basic.Get("a", "b"); err != nil || string(e.Value) != "1" {
		t.Fatalf("basic: %v", err)
	}
	if _, err := basic.Put("a", "b", 2); !errors.Is(err, koru.ErrForbidden) {
		t.Fatalf("read token writing: %v", err)
	}
	// WithToken wins over the URL's.
	both, _ := koru.Connect(u.String(), koru.WithToken(write))
	if _, err := both.Put("a", "b", 3); err != nil {
		t.Fatalf("WithToken over URL token: %v", err)
	}
}

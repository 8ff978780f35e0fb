//! Chains and signatures: the export, verification by the API and the real binary, tampering,
//! signed digests, and appends from several replicas.

use super::*;

#[tokio::test]
async fn export_verify_and_tampering() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let dir = tempfile::tempdir().unwrap();
        let (owner, org) = org_with_events(&api, "v@v.example", "Verified", 6).await;
        // Events of another organization and without one interleave in the global chain.
        org_with_events(&api, "w@w.example", "Other", 2).await;
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/login",
                None,
                Some(json!({"email": "v@v.example", "password": "wrong password"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        org_with_events(&api, "x@x.example", "Third", 0).await;

        // The public key, pinned by the customer.
        let (status, key) = api
            .call("GET", "/api/v1/audit/public-key", None, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let key_file = dir.path().join("audit.pub.pem");
        std::fs::write(&key_file, key["public_key_pem"].as_str().unwrap()).unwrap();
        let pinned = || {
            Some(TrustedKeys::new([TrustedKeys::parse_pem(
                key["public_key_pem"].as_str().unwrap(),
            )
            .unwrap()]))
        };
        let key_arg = key_file.to_str().unwrap();

        // The export: a header, the 7 events oldest first, a digest of the head.
        let reply = send(
            &api,
            "GET",
            &format!("/api/v1/orgs/{org}/audit/export"),
            Some(&owner),
            None,
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers["content-type"], "application/x-ndjson");
        let lines: Vec<ExportLine> = reply
            .text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            matches!(&lines[0], ExportLine::Header(h) if h.org_id == org && h.key_id == key["key_id"] && !h.filtered),
            "[{b}] {:?}",
            lines[0]
        );
        let seqs: Vec<i64> = lines
            .iter()
            .filter_map(|l| match l {
                ExportLine::Event(e) => Some(e.seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
        assert!(
            matches!(lines.last().unwrap(), ExportLine::Digest(d) if d.seq == 7 && d.scope == org),
            "[{b}] {:?}",
            lines.last()
        );
        let export_file = dir.path().join("export.jsonl");
        std::fs::write(&export_file, &reply.text).unwrap();
        let checked = verify_export(&reply.text, pinned()).unwrap();
        assert!(
            checked.verification.intact
                && checked.verification.events == 7
                && checked.verification.digests_checked == 1,
            "[{b}] {:?}",
            checked.verification
        );
        assert_eq!(checked.verification.unsigned_events, 0);
        let (code, out) = cli(&[
            "verify-export",
            export_file.to_str().unwrap(),
            "--public-key",
            key_arg,
        ]);
        assert_eq!(code, 0, "[{b}] {out}");
        assert!(out.contains("chain intact: 7 events"), "[{b}] {out}");

        // A filtered export says so, and carries only matching events.
        let reply = send(
            &api,
            "GET",
            &format!("/api/v1/orgs/{org}/audit/export?outcome=failure"),
            Some(&owner),
            None,
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.text.lines().count(),
            1,
            "[{b}] header only: {}",
            reply.text
        );
        assert!(reply.text.contains("\"filtered\":true"));

        let v = api_verify(&api, &owner, &org).await;
        assert!(
            v.intact && v.events == 7 && v.digests_checked == 1 && v.signatures_checked,
            "[{b}] {v:?}"
        );
        let (code, out) = cli(&[
            "verify",
            "--database-url",
            &backend.url,
            "--public-key",
            key_arg,
        ]);
        assert_eq!(code, 0, "[{b}] {out}");
        let total = all_events(&api).await.len();
        assert!(
            out.contains(&format!("chain intact: {total} events")),
            "[{b}] {out}"
        );
        let (code, out) = cli(&[
            "verify",
            "--database-url",
            &backend.url,
            "--org",
            "verified",
        ]);
        assert_eq!(code, 0, "[{b}] {out}");
        assert!(
            out.contains("chain intact: 7 events") && out.contains("signatures NOT checked"),
            "[{b}] {out}"
        );

        // Alter one stored event: both chains break exactly there.
        let events = all_events(&api).await;
        let victim = events
            .iter()
            .find(|e| {
                e.org.as_ref().is_some_and(|l| l.seq == 5)
                    && e.record.org_id.as_deref() == Some(org.as_str())
            })
            .unwrap();
        let (k, org_k) = (victim.global.seq, 5);
        exec(
            &api,
            &format!("UPDATE audit_events SET target = 'x' WHERE seq = {k}"),
        )
        .await;
        let v = api_verify(&api, &owner, &org).await;
        let broken = v.broken.clone().unwrap();
        assert!(
            !v.intact && broken.seq == org_k && v.events == 4,
            "[{b}] {v:?}"
        );
        assert_eq!(broken.event_id.as_deref(), Some(victim.record.id.as_str()));
        assert!(broken.reason.contains("altered"), "[{b}] {broken:?}");
        let (code, out) = cli(&[
            "verify",
            "--database-url",
            &backend.url,
            "--public-key",
            key_arg,
        ]);
        assert_eq!(code, 1, "[{b}] {out}");
        assert!(
            out.contains(&format!(
                "broken link at seq {k} (event id {})",
                victim.record.id
            )),
            "[{b}] {out}"
        );
        let (code, out) = cli(&["verify", "--database-url", &backend.url, "--org", &org]);
        assert_eq!(code, 1, "[{b}] {out}");
        assert!(
            out.contains(&format!("broken link at seq {org_k}")),
            "[{b}] {out}"
        );
        // The customer's copy still verifies; the same edit to it does not.
        assert!(
            verify_export(&std::fs::read_to_string(&export_file).unwrap(), pinned())
                .unwrap()
                .verification
                .intact
        );
        let altered = std::fs::read_to_string(&export_file).unwrap().replace(
            &format!("\"target\":\"/api/v1/orgs/{org}/tokens\""),
            "\"target\":\"x\"",
        );
        let altered_file = dir.path().join("altered.jsonl");
        std::fs::write(&altered_file, &altered).unwrap();
        let (code, out) = cli(&[
            "verify-export",
            altered_file.to_str().unwrap(),
            "--public-key",
            key_arg,
        ]);
        assert_eq!(code, 1, "[{b}] {out}");
        assert!(
            out.contains("broken link at seq 2"),
            "[{b}] the first token event: {out}"
        );

        // Even rehashing the whole organization chain after the edit is caught by the signed digest.
        exec(
            &api,
            &format!(
                "UPDATE audit_events SET target = '/api/v1/orgs/{org}/tokens' WHERE seq = {k}"
            ),
        )
        .await;
        assert!(
            api_verify(&api, &owner, &org).await.intact,
            "[{b}] restored"
        );
        let mut prev = GENESIS_HASH.to_string();
        for e in all_events(&api)
            .await
            .into_iter()
            .filter(|e| e.record.org_id.as_deref() == Some(org.as_str()))
        {
            let link = e.org.unwrap();
            let mut record = e.record.clone();
            if link.seq == 3 {
                record.outcome = "failure:403".into();
            }
            let hash = koru_controlplane::audit::chain::link_hash(
                ChainKind::Org,
                link.seq,
                &prev,
                &record,
            );
            exec(&api, &format!("UPDATE audit_events SET outcome = '{}', org_prev_hash = '{prev}', org_hash = '{hash}' WHERE id = '{}'", record.outcome, record.id)).await;
            prev = hash;
        }
        let v = api_verify(&api, &owner, &org).await;
        assert!(
            !v.intact && v.broken.as_ref().unwrap().seq == 7,
            "[{b}] the rewrite passes the links but not the digest at 7: {v:?}"
        );
        assert!(
            v.broken.as_ref().unwrap().reason.contains("rewritten"),
            "[{b}] {v:?}"
        );

        // A tampered digest fails its signature.
        let fresh = backends()
            .await
            .into_iter()
            .find(|f| f.name == backend.name)
            .unwrap();
        let api2 = Api::new(&fresh).await;
        let (owner2, org2) = org_with_events(&api2, "d@d.example", "Digested", 2).await;
        digest::sign_heads(&api2.state.db, &api2.state.sessions.key_pair().signing)
            .await
            .unwrap();
        assert!(api_verify(&api2, &owner2, &org2).await.intact);
        exec(
            &api2,
            "UPDATE audit_digests SET created_at = created_at + 1",
        )
        .await;
        let v = api_verify(&api2, &owner2, &org2).await;
        assert!(
            !v.intact
                && v.broken
                    .as_ref()
                    .unwrap()
                    .reason
                    .contains("signature does not verify"),
            "[{b}] {v:?}"
        );
        let key2 = dir.path().join("key2.pem");
        std::fs::write(&key2, &api2.state.sessions.key_pair().public_pem).unwrap();
        let (code, out) = cli(&[
            "verify",
            "--database-url",
            &fresh.url,
            "--public-key",
            key2.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "[{b}] {out}");
        assert!(out.contains("signature does not verify"), "[{b}] {out}");
        // A key that is not the audit key is refused too.
        let (code, out) = cli(&[
            "verify",
            "--database-url",
            &fresh.url,
            "--public-key",
            key_arg,
        ]);
        assert_eq!(code, 1, "[{b}] {out}");
        assert!(out.contains("not a trusted audit key"), "[{b}] {out}");
        let (code, out) = cli(&["verify", "--database-url", "mysql://nowhere"]);
        assert_eq!(code, 2, "[{b}] {out}");
    }
}

#[tokio::test]
async fn digests_are_signed_periodically_and_once_per_head() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let key = api.state.sessions.key_pair().signing.clone();
        let (owner, org) = org_with_events(&api, "p@p.example", "Periodic", 2).await;
        let task = digest::spawn_periodic(
            api.state.db.clone(),
            key.clone(),
            std::time::Duration::from_millis(50),
        );
        let org_seqs = || async {
            digest::list(&api.state.db, &org, 0, i64::MAX)
                .await
                .unwrap()
                .iter()
                .map(|d| d.seq)
                .collect::<Vec<_>>()
        };
        // Waits (up to 5 s) until the organization's digests are `want`.
        let wait_for = |want: Vec<i64>| async move {
            for _ in 0..100 {
                if org_seqs().await == want {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("[{b}] the digests are {:?}, not {want:?}", org_seqs().await);
        };
        wait_for(vec![3]).await;
        let head = store::global_head(&api.state.db).await.unwrap().unwrap();
        let global = digest::list(&api.state.db, digest::GLOBAL_SCOPE, 0, i64::MAX)
            .await
            .unwrap();
        assert_eq!(global.last().map(|d| d.seq), Some(head.seq), "[{b}]");
        // A new event gets its digest at a later tick; nothing is signed twice.
        let (status, _) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{org}/tokens"),
                Some(&owner),
                Some(json!({"name": "late", "role": "viewer"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        wait_for(vec![3, 4]).await;
        task.abort();
        // The global head may have moved past the last tick (the request's own event is appended
        // after its response is built): one explicit signing catches up, a second signs nothing.
        digest::sign_heads(&api.state.db, &key).await.unwrap();
        assert_eq!(
            digest::sign_heads(&api.state.db, &key).await.unwrap(),
            0,
            "[{b}] idempotent per head"
        );
        let v = api_verify(&api, &owner, &org).await;
        assert!(
            v.intact && v.digests_checked == 2 && v.unsigned_events == 0,
            "[{b}] {v:?}"
        );
        let whole = verify(
            &api.state.db,
            &Scope::Global,
            Some(TrustedKeys::new([key.verifying_key()])),
        )
        .await
        .unwrap();
        assert!(
            whole.intact && whole.digests_checked >= 1,
            "[{b}] {whole:?}"
        );
    }
}

/// Appends from many connections at once without this process's lock, as separate replicas
/// would: the unique seqs and the retry keep one contiguous chain.
#[tokio::test]
async fn appends_from_replicas_retry_into_one_chain() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let db = api.state.db.clone();
            tasks.spawn(async move {
                let record = Record {
                    id: uuid::Uuid::new_v4().to_string(),
                    time: i,
                    actor: Some("user:replica".into()),
                    org_id: Some(if i % 2 == 0 { "org-even" } else { "org-odd" }.into()),
                    source_ip: None,
                    action: "POST /test".into(),
                    target: "/test".into(),
                    outcome: "success".into(),
                    request_id: format!("r{i}"),
                };
                store::append_unserialized(&db, &record).await
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap().unwrap();
        }
        let v = verify(&api.state.db, &Scope::Global, None).await.unwrap();
        assert!(v.intact && v.events == 40, "[{b}] {v:?}");
        for org in ["org-even", "org-odd"] {
            let v = verify(&api.state.db, &Scope::Org(org.into()), None)
                .await
                .unwrap();
            assert!(v.intact && v.events == 20, "[{b}] {org}: {v:?}");
        }
    }
}

//! What is recorded, and who sees it: one event per state-changing request and login, tenant
//! isolation, filters and pages, concurrent requests.

use super::*;

#[tokio::test]
async fn every_state_changing_request_and_login_is_recorded_once() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;

        let (reply, r) = step(
            &api,
            "POST",
            "/api/v1/signup",
            None,
            Some(
                json!({"email": "Ann@A.example", "password": password(), "organization": "Org A"}),
            ),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        let signup = reply.json();
        let owner = signup["access_token"].as_str().unwrap().to_string();
        let owner_id = signup["user"]["id"].as_str().unwrap().to_string();
        let org = signup["organization"]["id"].as_str().unwrap().to_string();
        let ann = format!("user:{owner_id}");
        check(
            b,
            &r,
            "POST /api/v1/signup",
            Some(&ann),
            Some(&org),
            "success",
        );

        let (_, r) = step(
            &api,
            "POST",
            "/api/v1/signup",
            None,
            Some(
                json!({"email": "ann@a.example", "password": password(), "organization": "again"}),
            ),
        )
        .await;
        check(
            b,
            &r,
            "POST /api/v1/signup",
            Some("email:ann@a.example"),
            None,
            "failure:409",
        );

        let (reply, r) = step(
            &api,
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"email": " ANN@a.example", "password": "not the password"})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        check(
            b,
            &r,
            "POST /api/v1/login",
            Some("email:ann@a.example"),
            None,
            "failure:401",
        );
        assert!(
            !format!("{r:?}").contains("not the password"),
            "[{b}] passwords are never recorded"
        );
        let (_, r) = step(
            &api,
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"email": "nobody@a.example", "password": "whatever it is"})),
        )
        .await;
        check(
            b,
            &r,
            "POST /api/v1/login",
            Some("email:nobody@a.example"),
            None,
            "failure:401",
        );

        let (reply, r) = step(
            &api,
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"email": "ann@a.example", "password": password()})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        check(b, &r, "POST /api/v1/login", Some(&ann), None, "success");
        let session = reply.json()["access_token"].as_str().unwrap().to_string();
        let refresh = reply.json()["refresh_token"].as_str().unwrap().to_string();

        let (reply, r) = step(
            &api,
            "POST",
            "/api/v1/token/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        check(
            b,
            &r,
            "POST /api/v1/token/refresh",
            Some(&ann),
            None,
            "success",
        );
        assert!(
            !format!("{r:?}").contains(&refresh),
            "[{b}] tokens are never recorded"
        );
        let (_, r) = step(
            &api,
            "POST",
            "/api/v1/token/refresh",
            None,
            Some(json!({"refresh_token": "kr_nonsense"})),
        )
        .await;
        check(
            b,
            &r,
            "POST /api/v1/token/refresh",
            None,
            None,
            "failure:401",
        );

        let tokens = format!("/api/v1/orgs/{org}/tokens");
        let (reply, r) = step(
            &api,
            "POST",
            &tokens,
            Some(&owner),
            Some(json!({"name": "ci", "role": "admin"})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        check(
            b,
            &r,
            "POST /api/v1/orgs/{org}/tokens",
            Some(&ann),
            Some(&org),
            "success",
        );
        let api_token = reply.json()["token"].as_str().unwrap().to_string();
        let token_id = reply.json()["id"].as_str().unwrap().to_string();
        assert!(!format!("{r:?}").contains(&api_token));

        // By slug too, and by the API token, which is the actor then.
        let (reply, r) = step(
            &api,
            "POST",
            "/api/v1/orgs/org-a/tokens",
            Some(&api_token),
            Some(json!({"name": "other", "role": "viewer"})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        let token_actor = format!("token:{token_id}");
        check(
            b,
            &r,
            "POST /api/v1/orgs/{org}/tokens",
            Some(&token_actor),
            Some(&org),
            "success",
        );
        let other_id = reply.json()["id"].as_str().unwrap().to_string();

        let (reply, r) = step(
            &api,
            "DELETE",
            &format!("{tokens}/{other_id}"),
            Some(&owner),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        check(
            b,
            &r,
            "DELETE /api/v1/orgs/{org}/tokens/{id}",
            Some(&ann),
            Some(&org),
            "success",
        );

        // Bob, invited and accepting; then his role changed and him removed.
        let (bob, bob_org, _) = api.signup("bob@b.example", "Org B").await;
        let bob_id = user_id(&api, &bob).await;
        let invitations = format!("/api/v1/orgs/{org}/invitations");
        let (reply, r) = step(
            &api,
            "POST",
            &invitations,
            Some(&owner),
            Some(json!({"email": "bob@b.example", "role": "viewer"})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        check(
            b,
            &r,
            "POST /api/v1/orgs/{org}/invitations",
            Some(&ann),
            Some(&org),
            "success",
        );
        let secret = reply.json()["token"].as_str().unwrap().to_string();
        let (reply, r) = step(
            &api,
            "POST",
            "/api/v1/invitations/accept",
            Some(&bob),
            Some(json!({"token": secret})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        let bob_actor = format!("user:{bob_id}");
        check(
            b,
            &r,
            "POST /api/v1/invitations/accept",
            Some(&bob_actor),
            Some(&org),
            "success",
        );
        let (_, r) = step(
            &api,
            "POST",
            "/api/v1/invitations/accept",
            Some(&bob),
            Some(json!({"token": "used or wrong"})),
        )
        .await;
        check(
            b,
            &r,
            "POST /api/v1/invitations/accept",
            Some(&bob_actor),
            None,
            "failure:404",
        );

        let member = format!("/api/v1/orgs/{org}/members/{bob_id}");
        let (_, r) = step(
            &api,
            "PATCH",
            &member,
            Some(&bob),
            Some(json!({"role": "admin"})),
        )
        .await;
        check(
            b,
            &r,
            "PATCH /api/v1/orgs/{org}/members/{user}",
            Some(&bob_actor),
            Some(&org),
            "failure:403",
        );
        let (reply, r) = step(
            &api,
            "PATCH",
            &member,
            Some(&owner),
            Some(json!({"role": "member"})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        check(
            b,
            &r,
            "PATCH /api/v1/orgs/{org}/members/{user}",
            Some(&ann),
            Some(&org),
            "success",
        );
        let (reply, r) = step(&api, "DELETE", &member, Some(&owner), None).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        check(
            b,
            &r,
            "DELETE /api/v1/orgs/{org}/members/{user}",
            Some(&ann),
            Some(&org),
            "success",
        );

        // An outsider's refused attempt is filed under the organization it addressed.
        let (reply, r) = step(
            &api,
            "POST",
            &tokens,
            Some(&bob),
            Some(json!({"name": "x", "role": "viewer"})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        check(
            b,
            &r,
            "POST /api/v1/orgs/{org}/tokens",
            Some(&bob_actor),
            Some(&org),
            "failure:404",
        );
        // Unauthenticated, and an unknown organization.
        let (_, r) = step(
            &api,
            "POST",
            &tokens,
            None,
            Some(json!({"name": "x", "role": "viewer"})),
        )
        .await;
        check(
            b,
            &r,
            "POST /api/v1/orgs/{org}/tokens",
            None,
            Some(&org),
            "failure:401",
        );
        let (_, r) = step(
            &api,
            "POST",
            "/api/v1/orgs/no-such-org/tokens",
            Some(&owner),
            Some(json!({"name": "x", "role": "viewer"})),
        )
        .await;
        check(
            b,
            &r,
            "POST /api/v1/orgs/{org}/tokens",
            Some(&ann),
            None,
            "failure:404",
        );

        let (reply, r) = step(&api, "POST", "/api/v1/logout", Some(&session), None).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        check(b, &r, "POST /api/v1/logout", Some(&ann), None, "success");

        // Reads and unrouted requests append nothing, but every response has a request id.
        let before = all_events(&api).await.len();
        for (method, path) in [
            ("GET", format!("/api/v1/orgs/{org}/members")),
            ("GET", "/api/v1/me".to_string()),
            ("POST", "/api/v1/nowhere".to_string()),
        ] {
            let reply = send(
                &api,
                method,
                &path,
                Some(&owner),
                None,
                Some("bad id with spaces"),
            )
            .await;
            let id = reply.headers["x-request-id"].to_str().unwrap();
            assert_eq!(
                id.len(),
                36,
                "[{b}] an insane request id is replaced by a uuid: {id}"
            );
        }
        assert_eq!(
            all_events(&api).await.len(),
            before,
            "[{b}] reads are not audited"
        );

        // Bob's own organization has only his sign-up.
        let bobs = store::org_events(
            &api.state.db,
            &bob_org,
            &Filter::default(),
            None,
            store::Direction::Newer,
            100,
        )
        .await
        .unwrap();
        assert_eq!(bobs.len(), 1, "[{b}] {bobs:?}");
        let whole = verify(&api.state.db, &Scope::Global, None).await.unwrap();
        assert!(whole.intact, "[{b}] {whole:?}");
    }
}

#[tokio::test]
async fn admins_see_their_organizations_events_only() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (a_owner, a_org) = org_with_events(&api, "a@a.example", "Tenant A", 3).await;
        let (b_owner, b_org) = org_with_events(&api, "b@b.example", "Tenant B", 4).await;
        let b_token = api.api_token(&b_owner, &b_org, "audit", "admin").await;

        let (status, page) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{a_org}/audit"),
                Some(&a_owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {page}");
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len(), 4, "[{b}] sign-up and three tokens: {page}");
        assert!(
            events.iter().all(|e| e["org_id"] == a_org.as_str()),
            "[{b}] {page}"
        );
        assert_eq!(
            events[0]["seq"], 4,
            "[{b}] newest first, numbered in A's own chain"
        );
        assert!(page["next_cursor"].is_null());
        // B, by user or token, reads B's own and sees nothing of A.
        for who in [&b_owner, &b_token] {
            let (status, page) = api
                .call("GET", "/api/v1/orgs/tenant-b/audit", Some(who), None)
                .await;
            assert_eq!(status, StatusCode::OK, "[{b}] {page}");
            assert!(
                page["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|e| e["org_id"] == b_org.as_str()),
                "[{b}] {page}"
            );
            for suffix in ["", "/export", "/verify"] {
                for org_ref in [a_org.as_str(), "tenant-a"] {
                    let (status, e) = api
                        .call(
                            "GET",
                            &format!("/api/v1/orgs/{org_ref}/audit{suffix}"),
                            Some(who),
                            None,
                        )
                        .await;
                    assert_eq!(
                        status,
                        StatusCode::NOT_FOUND,
                        "[{b}] B reading A's audit{suffix}: {e}"
                    );
                }
            }
        }
        // Below admin, members of A are refused; without a token, everyone is.
        let (status, invitation) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{a_org}/invitations"),
                Some(&a_owner),
                Some(json!({"email": "b@b.example", "role": "member"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/invitations/accept",
                Some(&b_owner),
                Some(json!({"token": invitation["token"]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        for suffix in ["", "/export", "/verify"] {
            let (status, _) = api
                .call(
                    "GET",
                    &format!("/api/v1/orgs/{a_org}/audit{suffix}"),
                    Some(&b_owner),
                    None,
                )
                .await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "[{b}] a member reading audit{suffix}"
            );
            let (status, _) = api
                .call(
                    "GET",
                    &format!("/api/v1/orgs/{a_org}/audit{suffix}"),
                    None,
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        // A's export has A's events only.
        let reply = send(
            &api,
            "GET",
            &format!("/api/v1/orgs/{a_org}/audit/export"),
            Some(&a_owner),
            None,
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            !reply.text.contains(&b_org),
            "[{b}] B's id appears in A's export"
        );
    }
}

#[tokio::test]
async fn filters_and_cursor_pages() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org) = org_with_events(&api, "f@f.example", "Filters", 12).await;
        let tokens = format!("/api/v1/orgs/{org}/tokens");
        for _ in 0..5 {
            let (status, _) = api
                .call(
                    "POST",
                    &tokens,
                    Some(&owner),
                    Some(json!({"name": "", "role": "viewer"})),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
        let (status, _) = api
            .call(
                "POST",
                &format!("/api/v1/orgs/{org}/invitations"),
                Some(&owner),
                Some(json!({"email": "i@f.example", "role": "viewer"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let audit = format!("/api/v1/orgs/{org}/audit");
        let list = |query: String| {
            let api = &api;
            let owner = &owner;
            let audit = &audit;
            async move {
                let (status, page) = api
                    .call("GET", &format!("{audit}?{query}"), Some(owner), None)
                    .await;
                assert_eq!(status, StatusCode::OK, "{query}: {page}");
                page
            }
        };
        let everything = list("limit=500".into()).await;
        let all: Vec<i64> = everything["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(
            all,
            (1..=19).rev().collect::<Vec<_>>(),
            "[{b}] sign-up, 12 + 5 token attempts, 1 invitation"
        );

        // Pages of 4 cover everything once, newest first.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let query = match &cursor {
                Some(c) => format!("limit=4&cursor={c}"),
                None => "limit=4".into(),
            };
            let page = list(query).await;
            seen.extend(
                page["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["seq"].as_i64().unwrap()),
            );
            pages += 1;
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, all, "[{b}] no duplicates, no gaps");
        assert_eq!(pages, 5);

        let failures = list("outcome=failure".into()).await;
        assert_eq!(
            failures["events"].as_array().unwrap().len(),
            5,
            "[{b}] {failures}"
        );
        assert!(
            failures["events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["outcome"] == "failure:400")
        );
        assert_eq!(
            list("outcome=failure:400".into()).await["events"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
        assert_eq!(
            list("outcome=failure:401".into()).await["events"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            list("outcome=success".into()).await["events"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        let action = "POST /api/v1/orgs/{org}/invitations"
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace(' ', "%20");
        let invites = list(format!("action={action}")).await;
        assert_eq!(
            invites["events"].as_array().unwrap().len(),
            1,
            "[{b}] {invites}"
        );
        let signup_actor = everything["events"].as_array().unwrap().last().unwrap()["actor"]
            .as_str()
            .unwrap()
            .to_string();
        let by_actor = list(format!("actor={signup_actor}&outcome=success&limit=3")).await;
        assert_eq!(by_actor["events"].as_array().unwrap().len(), 3);
        assert!(by_actor["next_cursor"].is_string());

        // Time windows: since is inclusive, until exclusive.
        let events = everything["events"].as_array().unwrap();
        let t = events[9]["time"].as_i64().unwrap();
        let since = list(format!("since={t}&limit=500")).await;
        assert!(
            since["events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["time"].as_i64().unwrap() >= t)
        );
        let until = list(format!("until={t}&limit=500")).await;
        assert!(
            until["events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["time"].as_i64().unwrap() < t)
        );
        assert_eq!(
            since["events"].as_array().unwrap().len() + until["events"].as_array().unwrap().len(),
            19
        );

        for bad in [
            "limit=501",
            "limit=0",
            "cursor=abc",
            "outcome=bad",
            "since=soon",
            "colour=red",
            "since=5&until=4",
        ] {
            let (status, e) = api
                .call("GET", &format!("{audit}?{bad}"), Some(&owner), None)
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {bad}: {e}");
        }
    }
}

#[tokio::test]
async fn concurrent_requests_keep_the_chains_contiguous() {
    for backend in backends().await {
        let api = std::sync::Arc::new(Api::new(&backend).await);
        let b = api.backend;
        let (owner, org) = org_with_events(&api, "c@c.example", "Concurrent", 0).await;
        let (_, other) = org_with_events(&api, "d@d.example", "Concurrent Too", 0).await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50 {
            let api = api.clone();
            let owner = owner.clone();
            // Most succeed; some fail (empty name); all are recorded.
            let name = if i % 5 == 0 {
                String::new()
            } else {
                format!("t{i}")
            };
            tasks.spawn(async move {
                send(
                    &api,
                    "POST",
                    &format!(
                        "/api/v1/orgs/{org}/tokens",
                        org = if i % 2 == 0 {
                            "concurrent"
                        } else {
                            "concurrent-too"
                        }
                    ),
                    Some(&owner),
                    Some(json!({"name": name, "role": "viewer"})),
                    None,
                )
                .await
                .status
            });
        }
        let mut statuses = Vec::new();
        while let Some(status) = tasks.join_next().await {
            statuses.push(status.unwrap());
        }
        assert_eq!(statuses.len(), 50);
        let events = all_events(&api).await;
        assert_eq!(events.len(), 52, "[{b}] two sign-ups and 50 requests");
        assert_eq!(
            events.iter().map(|e| e.global.seq).collect::<Vec<_>>(),
            (1..=52).collect::<Vec<_>>(),
            "[{b}]"
        );
        let whole = verify(&api.state.db, &Scope::Global, None).await.unwrap();
        assert!(whole.intact && whole.events == 52, "[{b}] {whole:?}");
        let mine = verify(&api.state.db, &Scope::Org(org.clone()), None)
            .await
            .unwrap();
        assert!(
            mine.intact && mine.events == 26,
            "[{b}] sign-up and 25 requests: {mine:?}"
        );
        // The owner of the first is an outsider to the second: refused, recorded there.
        let theirs = verify(&api.state.db, &Scope::Org(other.clone()), None)
            .await
            .unwrap();
        assert!(theirs.intact && theirs.events == 26, "[{b}] {theirs:?}");
    }
}

#[tokio::test]
async fn the_audit_endpoints_are_in_the_openapi_document() {
    let backend = &backends().await[0];
    let api = Api::new(backend).await;
    let (status, doc) = api.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/v1/orgs/{org}/audit",
        "/api/v1/orgs/{org}/audit/export",
        "/api/v1/orgs/{org}/audit/verify",
        "/api/v1/audit/public-key",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    let params = doc["paths"]["/api/v1/orgs/{org}/audit"]["get"]["parameters"].to_string();
    for name in [
        "action", "actor", "outcome", "since", "until", "cursor", "limit",
    ] {
        assert!(
            params.contains(&format!("\"{name}\"")),
            "{name} missing: {params}"
        );
    }
}

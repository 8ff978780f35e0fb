//! The connection snippets of a cluster's page: shell lines that use a fresh data-plane token with
//! curl, and the same read with the published `kdelta` CLI.

use koru_dataplane_api::auth::Scope;

/// A shell snippet that uses `token` against `endpoint`: it writes a key when the token may,
/// and reads it back.
pub fn snippet(endpoint: &str, token: &str, scope: Scope) -> String {
    let mut lines = vec![
        format!("export KORU_URL={endpoint}"),
        format!("export KORU_TOKEN={token}"),
    ];
    if scope >= Scope::Write {
        lines.push(
            "curl -sS -w '\\n' -X PUT \"$KORU_URL/api/v1/users/alice\" -H \"Authorization: Bearer $KORU_TOKEN\" -H 'Content-Type: application/json' -d '{\"value\": {\"name\": \"Alice\"}}'"
                .into(),
        );
    }
    lines.push("curl -sS -w '\\n' \"$KORU_URL/api/v1/users/alice\" -H \"Authorization: Bearer $KORU_TOKEN\"".into());
    lines.join("\n")
}

/// The same read with the published `kdelta` CLI, which cannot send a bearer token but sends its
/// URL's password as Basic auth, which the data plane takes as the token.
pub fn kdelta_snippet(endpoint: &str) -> String {
    format!(
        "kdelta --url \"{}\" get users/alice",
        endpoint.replacen("://", "://token:$KORU_TOKEN@", 1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snippet_writes_only_with_a_token_that_may() {
        let read = snippet("http://127.0.0.1:9", "t0k", Scope::Read);
        assert!(read.contains("export KORU_TOKEN=t0k") && read.contains("http://127.0.0.1:9"));
        assert!(!read.contains("-X PUT"), "{read}");
        let write = snippet("http://127.0.0.1:9", "t0k", Scope::Write);
        assert!(write.contains("-X PUT"), "{write}");
        assert_eq!(write.lines().count(), 4);
        assert_eq!(
            kdelta_snippet("http://127.0.0.1:9"),
            "kdelta --url \"http://token:$KORU_TOKEN@127.0.0.1:9\" get users/alice"
        );
    }
}

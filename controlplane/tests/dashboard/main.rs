//! The web dashboard: its forms, cookies and CSRF checks over the real router and a real database
//! (SQLite and PostgreSQL), and its journeys in a real headless Chromium against the real
//! `koru-controlplane dev` process.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod browser;
mod cluster_forms;
#[path = "../common/mod.rs"]
mod common;
mod explorer;
mod forms;
mod global_regions;
#[path = "../saml_idp/mod.rs"]
mod saml_idp;
mod sso;
mod storage_ceiling;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, Request, StatusCode};
use common::Api;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The host every request is sent to (the state's public URL is http://127.0.0.1:8080).
const HOST: &str = "127.0.0.1:8080";

/// A page as the router answered it.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// The redirect target.
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Every `Set-Cookie` header, as sent.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }

    /// The `Set-Cookie` header of `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }
}

/// A browser over the real router without a socket: it keeps cookies and follows no redirects.
pub struct Browser<'a> {
    api: &'a Api,
    /// Cookies by name.
    pub cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    pub fn new(api: &'a Api) -> Browser<'a> {
        Browser {
            api,
            cookies: BTreeMap::new(),
        }
    }

    pub async fn send(&mut self, req: axum::http::request::Builder, body: Body) -> Page {
        let mut req = req.header("host", HOST);
        if !self.cookies.is_empty() {
            let header = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header(COOKIE, header);
        }
        let response = koru_controlplane::http::app(self.api.state.clone())
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let page = Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        };
        for raw in page.set_cookies() {
            let c = cookie::Cookie::parse(raw).unwrap();
            if c.max_age().is_some_and(|a| a.is_zero()) {
                self.cookies.remove(c.name());
            } else {
                self.cookies
                    .insert(c.name().to_string(), c.value().to_string());
            }
        }
        page
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Request::builder().uri(path), Body::empty()).await
    }

    /// `POST path` with exactly these form fields, from this origin.
    pub async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)], origin: &str) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", origin);
        self.send(req, Body::from(body)).await
    }

    /// `POST path` with these fields and the CSRF token, as the page's form would.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = ["koru_csrf", "__Host-koru_csrf"]
            .iter()
            .find_map(|name| self.cookies.get(*name).cloned())
            .unwrap_or_default();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all, &format!("http://{HOST}")).await
    }

    /// Signs up through the sign-up form; returns the organization's slug.
    pub async fn sign_up(&mut self, email: &str, org: &str, tier: &str) -> String {
        self.get("/signup").await;
        let page = self
            .post(
                "/signup",
                &[
                    ("email", email),
                    ("password", "correct horse battery"),
                    ("organization", org),
                    ("tier", tier),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        page.location()
            .strip_prefix("/orgs/")
            .and_then(|rest| rest.strip_suffix("/clusters"))
            .unwrap_or_else(|| panic!("sign-up went to {}", page.location()))
            .to_string()
    }
}

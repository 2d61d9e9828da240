//! The browser side of the OAuth flow for tests: a client that keeps cookies, never follows
//! redirects, signs in through the page and answers the consent form, reading the CSRF
//! tokens from the HTML.

use std::collections::HashMap;

use flagstaff_testkit::app::TestApp;
use reqwest::header::{LOCATION, SET_COOKIE};

/// The password the OAuth tests give members.
pub const PASSWORD: &str = "correct horse battery staple";

/// A browser: keeps cookies, never follows redirects.
pub struct Browser {
    base: String,
    http: reqwest::Client,
    pub cookies: HashMap<String, String>,
    /// Every Set-Cookie seen, for attribute checks.
    pub set_cookies: Vec<String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub html: String,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self {
            base: app.base_url.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            set_cookies: Vec::new(),
        }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("Cookie", cookie)
        };
        let response = req.send().await.expect("request");
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap().to_string();
            let (pair, _) = text.split_once(';').unwrap_or((&text, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
            self.set_cookies.push(text);
        }
        Page {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_string()),
            html: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(self.url(path));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(self.url(path)).form(form);
        self.send(req).await
    }

    /// Signs in through the page, starting from `start` (a page that redirects to sign-in
    /// or the sign-in page itself); returns where the sign-in sent the browser.
    pub async fn sign_in(&mut self, start: &str, email: &str) -> Page {
        let mut page = self.get(start).await;
        if page.status == 303 {
            let location = page.location.clone().unwrap();
            assert!(location.starts_with("/trust/signin"), "{location}");
            page = self.get(&location).await;
        }
        assert_eq!(page.status, 200, "{}", page.html);
        let csrf = hidden(&page.html, "csrf");
        let next = hidden(&page.html, "next");
        self.post(
            "/trust/signin",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("next", &next),
            ],
        )
        .await
    }

    /// Signs in if needed, then answers the consent page; returns the redirect to the app.
    pub async fn consent(&mut self, authorize_url: &str, email: &str, decision: &str) -> String {
        let mut page = self.get(authorize_url).await;
        if page.status == 303 {
            page = self.sign_in(authorize_url, email).await;
            assert_eq!(page.status, 303, "{}", page.html);
            page = self.get(page.location.as_deref().unwrap()).await;
        }
        assert_eq!(page.status, 200, "consent page: {}", page.html);
        let request = hidden(&page.html, "request");
        let csrf = hidden(&page.html, "csrf");
        let page = self
            .post(
                "/trust/oauth/authorize",
                &[
                    ("request", &request),
                    ("csrf", &csrf),
                    ("decision", decision),
                ],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.html);
        page.location.unwrap()
    }
}

/// The value of a hidden form field in a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The query parameters of a redirect back to the app.
pub fn query(location: &str) -> HashMap<String, String> {
    let url = reqwest::Url::parse(location).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// An authorization URL built by hand (for the negative tests).
pub fn authorize_url(params: &[(&str, &str)]) -> String {
    format!(
        "/trust/oauth/authorize?{}",
        serde_urlencoded::to_string(params).unwrap()
    )
}

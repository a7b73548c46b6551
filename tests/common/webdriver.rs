//! A real headless Chromium driven over WebDriver: chromedriver started on a free port
//! (killed on drop), and the dozen W3C WebDriver endpoints the console's browser tests
//! use, spoken through reqwest. Every wait polls a condition; none sleeps a fixed time.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::pipeline::ChildGuard;

/// The W3C name of an element reference in WebDriver JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a page may take to show what a test waits for.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

/// A chromedriver process of the test's own.
pub struct Chromedriver {
    _child: ChildGuard,
    url: String,
}

/// Finds an executable on PATH.
fn on_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

impl Chromedriver {
    /// Starts chromedriver on a free port and waits until it says it is ready. Fails (never
    /// skips) when Chromium or chromedriver is missing.
    pub async fn start() -> Chromedriver {
        let driver = on_path("chromedriver").unwrap_or_else(|| {
            panic!(
                "chromedriver is not installed: run `scripts/services install` (it installs \
                 Debian's chromium and chromium-driver)"
            )
        });
        assert!(
            chromium_binary().is_some(),
            "chromium is not installed: run `scripts/services install` (it installs Debian's \
             chromium and chromium-driver)"
        );
        let port = super::free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let guard = ChildGuard(child);
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let status = format!("{url}/status");
        super::wait_until(PAGE_WAIT, "chromedriver to be ready", || {
            let request = http.get(&status).send();
            async move {
                match request.await {
                    Ok(response) => response.text().await.is_ok_and(|text| {
                        serde_json::from_str::<Value>(&text)
                            .is_ok_and(|v| v["value"]["ready"] == true)
                    }),
                    Err(_) => false,
                }
            }
        })
        .await;
        Chromedriver { _child: guard, url }
    }
}

/// Sends a WebDriver request and parses its JSON answer.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    let text = request
        .send()
        .await
        .expect("chromedriver answers")
        .text()
        .await
        .expect("WebDriver answer");
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("WebDriver JSON ({err}): {text}"))
}

/// The Chromium binary (Debian names it `chromium`).
fn chromium_binary() -> Option<std::path::PathBuf> {
    on_path("chromium").or_else(|| on_path("chromium-browser"))
}

/// One browser session.
pub struct Browser {
    http: reqwest::Client,
    session_url: String,
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Opens a headless Chromium window of 1400×1000.
    pub async fn open(driver: &Chromedriver) -> Browser {
        let http = reqwest::Client::new();
        let binary = chromium_binary().expect("chromium");
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": binary.to_string_lossy(),
                    // No sandbox: the tests run as root in CI; no /dev/shm: containers
                    // give it 64 MB.
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1400,1000",
                             "--hide-scrollbars"]
                }
            }}
        });
        let response = json_of(
            http.post(format!("{}/session", driver.url))
                .header("content-type", "application/json")
                .body(capabilities.to_string()),
        )
        .await;
        let id = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {response}"))
            .to_string();
        Browser {
            http,
            session_url: format!("{}/session/{id}", driver.url),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.session_url));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        json_of(request).await["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Loads `url` (returns when the page has loaded).
    pub async fn goto(&self, url: &str) {
        let value = self.post("/url", json!({ "url": url })).await;
        assert!(value.is_null(), "navigation to {url} failed: {value}");
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's HTML as the browser has it.
    pub async fn source(&self) -> String {
        self.get("/source")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Every element `css` selects now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let value = self
            .post(
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i[ELEMENT].as_str().map(|id| Element(id.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element `css` selects, waiting until there is one.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            if let Some(found) = self.find_all(css).await.into_iter().next() {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no element {css:?} on {} within {PAGE_WAIT:?}:\n{}",
                self.url().await,
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks an element.
    pub async fn click(&self, element: &Element) {
        let value = self
            .post(&format!("/element/{}/click", element.0), json!({}))
            .await;
        assert!(value.is_null(), "click failed: {value}");
    }

    /// Types `text` into an element.
    pub async fn type_into(&self, element: &Element, text: &str) {
        let value = self
            .post(
                &format!("/element/{}/value", element.0),
                json!({ "text": text }),
            )
            .await;
        assert!(value.is_null(), "typing failed: {value}");
    }

    /// An element's visible text.
    pub async fn text(&self, element: &Element) -> String {
        self.get(&format!("/element/{}/text", element.0))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the element `css` selects shows text containing `wanted`; returns the text.
    pub async fn wait_for_text(&self, css: &str, wanted: &str) -> String {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            let mut last = String::new();
            if let Some(element) = self.find_all(css).await.into_iter().next() {
                last = self.text(&element).await;
                if last.contains(wanted) {
                    return last;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{css:?} on {} did not show {wanted:?} within {PAGE_WAIT:?} (it shows {last:?})",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the window.
    pub async fn screenshot(&self, path: &Path) {
        let encoded = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("screenshot data"))
            .expect("screenshot base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (and its Chromium) before chromedriver is killed; a blocking
        // client, as drop cannot await.
        let url = self.session_url.clone();
        let _ = std::thread::spawn(move || {
            reqwest::blocking::Client::new()
                .delete(url)
                .timeout(Duration::from_secs(10))
                .send()
        })
        .join();
    }
}

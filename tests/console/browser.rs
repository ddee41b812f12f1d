//! Headless Chromium (Debian's `chromium` and `chromium-driver`) driven
//! through WebDriver: one chromedriver per test binary run, one browser
//! session per signed-in person.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The size screenshots are taken at.
pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 800;
/// A narrow window: a phone, or a laptop's window beside another.
pub const NARROW: u32 = 400;

pub struct Driver {
    child: Child,
    pub url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// chromedriver on a free loopback port.
    pub async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/test-env.sh installs it)");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Driver { child, url };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start");
    }

    /// A fresh headless browser (its own profile, so its own cookies).
    pub async fn browser(&self) -> Browser {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={WIDTH},{HEIGHT}"), "--hide-scrollbars", "--lang=en-US"],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session");
        let browser = Browser {
            client,
            driver: self.url.clone(),
        };
        browser.resize(WIDTH, HEIGHT).await;
        browser
    }
}

pub struct Browser {
    pub client: Client,
    driver: String,
}

impl Browser {
    /// The window holds the viewport and a little more: size it so the
    /// page itself is `width`×`height`.
    pub async fn resize(&self, width: u32, height: u32) {
        let (outer_width, outer_height) = self.client.get_window_size().await.unwrap();
        let inner = self.run("return [window.innerWidth, window.innerHeight]").await;
        let chrome = |i: usize, outer: u64| outer.saturating_sub(inner[i].as_u64().unwrap_or(0)) as u32;
        self.client
            .set_window_size(width + chrome(0, outer_width), height + chrome(1, outer_height))
            .await
            .unwrap();
    }

    /// Whether the page is wider than the window (a sideways scroll of the
    /// whole page, not of one table).
    pub async fn overflows(&self) -> bool {
        self.run("return document.documentElement.scrollWidth > window.innerWidth")
            .await
            .as_bool()
            .unwrap()
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// The visible text of every element `css` matches (an SVG element's
    /// text content), read in one script run (the page's script may swap
    /// `<main>` at any moment).
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let found = self
            .client
            .execute(
                "return Array.from(document.querySelectorAll(arguments[0])).map(e => (e.innerText ?? e.textContent).trim())",
                vec![json!(css)],
            )
            .await
            .unwrap();
        serde_json::from_value(found).unwrap()
    }

    pub async fn text(&self, css: &str) -> String {
        self.texts(css)
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("nothing matches {css}"))
    }

    pub async fn count(&self, css: &str) -> usize {
        self.texts(css).await.len()
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Waits until `css` matches something whose text contains `needle`.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        for _ in 0..200 {
            if let Some(found) = self.texts(css).await.into_iter().find(|t| t.contains(needle)) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no {css} containing {needle:?}; the page:\n{}",
            self.client.source().await.unwrap()
        );
    }

    /// Runs `script` as a function body (WebDriver's `execute`).
    pub async fn run(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Runs `script`, whose last argument is the callback to answer with.
    pub async fn run_async(&self, script: &str) -> Value {
        self.client.execute_async(script, vec![]).await.unwrap()
    }

    /// The browser's console messages since the last call (chromedriver's
    /// log endpoint), as `LEVEL message`.
    pub async fn console_messages(&self) -> Vec<String> {
        let session = self.client.session_id().await.unwrap().expect("a session");
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["value"]
            .as_array()
            .expect("chromedriver's browser log")
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["level"].as_str().unwrap_or("?"),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// Fails on any error the page logged (a CSP violation, a failed load, a
    /// script error).
    pub async fn assert_no_console_errors(&self, page: &str) {
        let errors: Vec<String> = self
            .console_messages()
            .await
            .into_iter()
            .filter(|m| m.starts_with("SEVERE") || m.starts_with("WARNING"))
            .collect();
        assert!(
            errors.is_empty(),
            "{page}: the browser console says:\n{}",
            errors.join("\n")
        );
    }

    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.unwrap()
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

//! The web console in a real browser: headless Chromium (Debian's
//! packages, through chromedriver) against the façade in-process on the
//! test API server, with its controllers probing the real PostgreSQL and
//! MariaDB of scripts/test-env.sh.
//!
//!     eval "$(bash scripts/test-env.sh)"; cargo test --test console
//!
//! With `DBFLEET_UPDATE_SCREENSHOTS=1` it also writes the pages'
//! screenshots (1280×800) to `docs/console/`; without, it still takes them
//! and checks each page rendered without a console error.

#[path = "../api/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../support/mod.rs"]
mod support;

mod browser;
mod fleet;

use std::time::Duration;

use browser::{Browser, Driver};
use dbfleet::console::capacity;
use harness::{Facade, User};
use serde_json::Value;

/// Signs `browser` in with `user`'s token through the sign-in page.
async fn sign_in(browser: &Browser, facade: &Facade, user: &User) {
    browser.goto(&format!("{}/console/", facade.base)).await;
    assert!(
        browser.path().await.starts_with("/console/sign-in"),
        "not signed in yet"
    );
    let field = browser.client.find(fantoccini::Locator::Css("#token")).await.unwrap();
    field.send_keys(&user.token).await.unwrap();
    browser.click("form.signin button[type=submit]").await;
    browser.wait_for_text(".notice.ok", "Signed in as").await;
    assert_eq!(browser.path().await, "/console/");
}

/// Saves (or only takes) the screenshot of the page `browser` shows.
async fn screenshot(browser: &Browser, name: &str) {
    screenshot_at(browser, name, (browser::WIDTH, browser::HEIGHT)).await
}

/// [`screenshot`] of a window of `size`.
async fn screenshot_at(browser: &Browser, name: &str, size: (u32, u32)) {
    let png = browser.screenshot().await;
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{name}: a blank screenshot"
    );
    let (width, height) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!((width, height), size, "{name}");
    if std::env::var_os("DBFLEET_UPDATE_SCREENSHOTS").is_some() {
        let path = support::repo_root().join(format!("docs/console/{name}.png"));
        std::fs::write(&path, png).unwrap();
    }
}

/// Loads `url` again until `css` has text containing `needle` (what the
/// server renders, for facts that arrive in the background).
async fn reload_until(browser: &Browser, url: &str, css: &str, needle: &str) -> String {
    for _ in 0..60 {
        browser.goto(url).await;
        if let Some(found) = browser.texts(css).await.into_iter().find(|t| t.contains(needle)) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "no {css} containing {needle:?} at {url}; the page:\n{}",
        browser.client.source().await.unwrap()
    );
}

async fn stats(facade: &Facade, user: &User) -> Value {
    let answer = facade.get(user, "/api/v1/instances/statistics").await;
    answer.expect(200, "OK");
    answer.data().clone()
}

#[tokio::test]
async fn the_console_in_a_browser() {
    let facade = Facade::start("console").await;
    let _controllers = support::controller::start(&facade.admin, &facade.namespace, |_| {});
    let editor = facade.editor().await;
    let viewer = facade
        .user("viewer", &["dbinstances", "dbtags", "dbinventories"], &["get", "list"])
        .await;
    // The editor may list Events too (before any page asks: answers are
    // cached); the viewer may not.
    fleet::allow_events(&facade, "editor").await;
    let fleet = fleet::build(&facade, &editor).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let base = &facade.base;

    // Signed out, every page leads to the sign-in page, which renders.
    browser.goto(&format!("{base}/console/instances")).await;
    assert_eq!(browser.path().await, "/console/sign-in?next=%2Fconsole%2Finstances");
    browser.assert_no_console_errors("sign-in").await;
    screenshot(&browser, "sign-in").await;
    browser.goto(&format!("{base}/")).await;
    assert!(browser.path().await.starts_with("/console/sign-in"));

    sign_in(&browser, &facade, &editor).await;
    assert_eq!(
        browser.run("return document.cookie").await,
        Value::String(String::new()),
        "the sign-in cookie is HttpOnly"
    );

    // The overview's numbers are the REST statistics'.
    let expected = stats(&facade, &editor).await;
    let tiles: Vec<String> = browser.texts(".tile").await;
    for (label, key) in [
        ("instances", "total"),
        ("active", "active"),
        ("inactive", "inactive"),
        ("stale", "stale"),
        ("recycled", "recycled"),
    ] {
        let shown = tiles
            .iter()
            .find(|t| t.ends_with(label))
            .unwrap_or_else(|| panic!("no {label} tile in {tiles:?}"));
        assert_eq!(
            shown.split_whitespace().next().unwrap(),
            expected[key].to_string(),
            "{label}: {tiles:?} against {expected:#}"
        );
    }
    let engines = browser.texts("section.card:first-child .counts li").await;
    assert!(
        engines.contains(&format!("{} mysql", expected["by_db_type"]["mysql"])),
        "{engines:?} against {expected:#}"
    );
    // Findings by severity, as GET /findings counts them, each linking to
    // the findings list of that severity.
    let findings = facade.get(&editor, "/api/v1/findings").await;
    findings.expect(200, "OK");
    let shown = browser.texts("#findings .counts li").await;
    for severity in ["high", "medium", "low"] {
        let count = &findings.data()["by_severity"][severity];
        assert!(
            shown.contains(&format!("{count} {severity}")),
            "{shown:?} against {:#}",
            findings.body
        );
    }
    assert_eq!(browser.count("#growing").await + browser.count("#full-soon").await, 2);
    browser.assert_no_console_errors("overview").await;
    screenshot(&browser, "overview").await;
    browser.click("#findings .counts li:first-child a").await;
    assert_eq!(browser.path().await, "/console/findings?severity=high");
    let high = facade.get(&editor, "/api/v1/findings?severity=high").await;
    let codes = browser.texts("table tbody td:nth-child(3)").await;
    let expected: Vec<String> = high.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes, expected);
    browser.assert_no_console_errors("findings").await;

    // Filtering and paging, with the REST list's own filters.
    browser
        .goto(&format!(
            "{base}/console/instances?search=spare-&limit=20&sort=name&order=asc"
        ))
        .await;
    assert_eq!(browser.count("table.instances tbody tr").await, 20);
    assert_eq!(browser.text(".summary").await, format!("1–20 of {}", fleet::SPARES));
    browser.click("a[rel=next]").await;
    assert_eq!(browser.count("table.instances tbody tr").await, fleet::SPARES - 20);
    assert!(browser.path().await.contains("page=2"));
    let names = browser.texts("table.instances tbody td:nth-child(2) > a").await;
    assert_eq!(names.first().map(String::as_str), Some("spare-21"), "{names:?}");
    browser.goto(&format!("{base}/console/instances?db_type=mysql")).await;
    let names = browser.texts("table.instances tbody td:nth-child(2) > a").await;
    assert_eq!(names, ["maria"]);

    // A description with <script> is text.
    browser.goto(&format!("{base}/console/instances?search=closed")).await;
    assert_eq!(browser.text(".description").await, fleet::HOSTILE);
    assert_eq!(
        browser
            .run("return document.querySelectorAll('main script').length")
            .await,
        0
    );
    browser.assert_no_console_errors("instances").await;

    // The full list, for its screenshot.
    browser
        .goto(&format!("{base}/console/instances?sort=name&order=asc&limit=20"))
        .await;
    screenshot(&browser, "instances").await;

    // One instance shows its real databases and accounts.
    // (The test PostgreSQL holds other tests' databases too: filter.)
    browser
        .goto(&format!("{base}/console/instances/{}?databases=postgres", fleet.pg))
        .await;
    let databases = browser.texts("#databases tbody td:first-child").await;
    assert!(databases.contains(&"postgres".to_string()), "{databases:?}");
    browser.goto(&format!("{base}/console/instances/{}", fleet.pg)).await;
    let field = browser
        .client
        .find(fantoccini::Locator::Css("input[name=databases]"))
        .await
        .unwrap();
    field.send_keys("<script>").await.unwrap();
    browser.click("#databases form button").await;
    let databases = browser.texts("#databases tbody td:first-child").await;
    assert!(
        databases.contains(&fleet.hostile_db),
        "the <script> database shows as text: {databases:?}"
    );
    browser
        .goto(&format!(
            "{base}/console/instances/{}?accounts={}",
            fleet.pg, fleet.pg_user
        ))
        .await;
    let accounts = browser.texts("#accounts tbody td:first-child").await;
    assert!(accounts.contains(&fleet.pg_user), "{accounts:?}");
    assert_eq!(
        browser
            .run("return document.querySelectorAll('main script').length")
            .await,
        0
    );
    browser.assert_no_console_errors("instance").await;
    browser
        .goto(&format!("{base}/console/instances/{}?databases=console_", fleet.pg))
        .await;
    screenshot(&browser, "instance").await;
    browser.run("document.getElementById('root').scrollIntoView()").await;
    screenshot(&browser, "instance-inventory").await;

    // A test-connection click updates the page.
    let before = browser.text("#connection time").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    browser.click("form[action$='/test-connection'] button").await;
    browser.wait_for_text(".notice.ok", "Connection test passed").await;
    let after = browser.text("#connection time").await;
    assert_ne!(before, after, "the last check moved");
    assert_eq!(browser.path().await, format!("/console/instances/{}", fleet.pg));
    browser.assert_no_console_errors("after a test").await;
    browser
        .goto(&format!(
            "{base}/console/instances/{}?accounts={}",
            fleet.maria, fleet.maria_user
        ))
        .await;
    let accounts = browser.texts("#accounts tbody td:first-child").await;
    assert!(
        accounts
            .iter()
            .any(|a| a.starts_with(&format!("{}@", fleet.maria_user))),
        "{accounts:?}"
    );

    // Its findings, as GET /findings?instance_id= lists them, and its
    // recent Events (the controller records them as it connects).
    let pg_page = format!("{base}/console/instances/{}", fleet.pg);
    reload_until(&browser, &pg_page, "#events tbody tr", "").await;
    let rest = facade
        .get(&editor, &format!("/api/v1/findings?instance_id={}", fleet.pg))
        .await;
    let expected: Vec<String> = rest.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(browser.texts("#findings tbody td:nth-child(2)").await, expected);
    assert_eq!(
        browser.count("#capacity").await,
        1,
        "one sample or more, or a note that there is none yet"
    );
    browser.assert_no_console_errors("instance with events").await;

    // `growing`'s capacity history: the chart with its axes, samples, fit,
    // limit and forecast, as GET .../capacity/history answers; its change
    // log, whose hostile account name is text.
    let growing = format!("{base}/console/instances/{}", fleet.growing);
    let forecast = reload_until(&browser, &growing, "#capacity .days", "Full in").await;
    let rest = facade
        .get(
            &editor,
            &format!("/api/v1/instances/{}/capacity/history", fleet.growing),
        )
        .await;
    rest.expect(200, "OK");
    let days = rest.data()["forecast"]["days_until_full"].as_f64().unwrap();
    assert!(
        forecast.starts_with(&format!("Full in {}", capacity::days(days))),
        "{forecast} against {:#}",
        rest.body
    );
    let rate = rest.data()["fit"]["bytes_per_day"].as_i64().unwrap();
    assert_eq!(browser.text("#capacity .growth").await, capacity::rate(rate));
    assert_eq!(browser.count("#capacity svg circle.sample").await, fleet::SAMPLES);
    for part in ["line.fit", "line.projection", ".limit line"] {
        assert_eq!(browser.count(&format!("#capacity svg {part}")).await, 1, "{part}");
    }
    let sizes = browser.texts("#capacity svg text.y").await;
    assert!(
        sizes.first().is_some_and(|s| s == "0") && sizes.iter().skip(1).all(|s| s.ends_with(" GiB")),
        "{sizes:?}"
    );
    assert_eq!(browser.text("#capacity svg text.title").await, "date (UTC)");
    assert!(browser.count("#capacity svg text.x").await >= 4);
    let changed = browser.texts("#changes tbody td:nth-child(2)").await;
    assert_eq!(
        changed.first().map(String::as_str),
        Some("app@%"),
        "newest first: {changed:?}"
    );
    assert!(
        changed.contains(&format!("{}@%", fleet::HOSTILE_ACCOUNT)),
        "{changed:?}"
    );
    assert_eq!(
        browser
            .run("return document.querySelectorAll('main script').length")
            .await,
        0
    );
    browser.assert_no_console_errors("capacity history").await;
    browser
        .run("document.getElementById('capacity').scrollIntoView()")
        .await;
    screenshot(&browser, "instance-history").await;
    browser.run("document.getElementById('changes').scrollIntoView()").await;
    screenshot(&browser, "instance-changes").await;

    // A narrow window: nothing but a wide table's own box scrolls sideways.
    browser.resize(browser::NARROW, browser::HEIGHT).await;
    for url in [
        format!("{base}/console/"),
        format!("{base}/console/instances"),
        growing.clone(),
        pg_page.clone(),
        format!("{base}/console/findings"),
    ] {
        browser.goto(&url).await;
        assert!(
            !browser.overflows().await,
            "{url} is wider than {} px: {}",
            browser::NARROW,
            browser.run("return [document.documentElement.scrollWidth, window.innerWidth, \
                Array.from(document.querySelectorAll('main *')).filter(e => e.getBoundingClientRect().right > window.innerWidth).slice(0, 5).map(e => e.outerHTML.slice(0, 120))]").await
        );
    }
    browser.goto(&growing).await;
    browser
        .run("document.getElementById('capacity').scrollIntoView()")
        .await;
    screenshot_at(&browser, "instance-narrow", (browser::NARROW, browser::HEIGHT)).await;
    browser.goto(&format!("{base}/console/")).await;
    screenshot_at(&browser, "overview-narrow", (browser::NARROW, browser::HEIGHT)).await;
    browser.assert_no_console_errors("narrow").await;
    browser.resize(browser::WIDTH, browser::HEIGHT).await;

    // Search answers as you type.
    browser.goto(&format!("{base}/console/search")).await;
    let field = browser
        .client
        .find(fantoccini::Locator::Css("input[name=search]"))
        .await
        .unwrap();
    field
        .send_keys(&fleet.pg_user[..fleet.pg_user.len().min(5)])
        .await
        .unwrap();
    browser.wait_for_text("#results .summary", "match").await;
    let found = browser.texts("#results tbody td:nth-child(2) a").await;
    assert!(found.contains(&"pg".to_string()), "{found:?}");
    assert!(
        browser.path().await.contains("search="),
        "the address follows the search"
    );
    browser.assert_no_console_errors("search").await;
    screenshot(&browser, "search").await;

    browser.goto(&format!("{base}/console/tags")).await;
    assert!(browser.texts("tbody td.mono").await.contains(&"prod".to_string()));
    browser.assert_no_console_errors("tags").await;
    screenshot(&browser, "tags").await;

    // A full account sync from its button; the session's page follows it.
    browser.goto(&format!("{base}/console/sync-sessions")).await;
    browser.click("form[action='/console/sync-sessions'] button").await;
    browser.wait_for_text(".notice.ok", "accounts-").await;
    assert!(browser.path().await.starts_with("/console/sync-sessions/accounts-"));
    // The closed port fails, the real servers succeed; the page refreshes
    // itself until the session is done.
    browser.wait_for_text("h1 .badge", "partially failed").await;
    browser.goto(&format!("{base}/console/sync-sessions")).await;
    browser.assert_no_console_errors("sync sessions").await;
    screenshot(&browser, "sync-sessions").await;

    // Sign out: the cookie is gone, pages lead to the sign-in again.
    browser.click("form.who button").await;
    browser.wait_for_text(".notice.ok", "Signed out").await;
    browser.goto(&format!("{base}/console/instances")).await;
    assert!(browser.path().await.starts_with("/console/sign-in"));

    // A view-only token: no button it cannot use, and a forged post is 403.
    sign_in(&browser, &facade, &viewer).await;
    browser.goto(&format!("{base}/console/instances?status=active")).await;
    for action in ["sync-capacity", "sync-accounts", "recycle", "restore"] {
        assert_eq!(
            browser.count(&format!("form[action$='/{action}']")).await,
            0,
            "a viewer sees no {action} button"
        );
    }
    assert_eq!(browser.count("#bulk").await, 0, "nor the bulk tag form");
    // It may not list Events: the panel says so; the history it may read.
    browser
        .goto(&format!("{base}/console/instances/{}", fleet.growing))
        .await;
    assert!(browser.text("#events").await.contains("Events need list on events"));
    assert_eq!(browser.count("#capacity svg").await, 1);
    browser.goto(&format!("{base}/console/instances?status=active")).await;
    assert!(
        browser.count("form[action$='/test-connection']").await > 0,
        "testing needs only view"
    );
    let forged = format!(
        "const done = arguments[arguments.length - 1];
         const csrf = document.querySelector('input[name=csrf_token]').value;
         const post = (body) => fetch('/console/instances/{}/sync-capacity', {{method: 'POST',
             headers: {{'Content-Type': 'application/x-www-form-urlencoded'}}, body}}).then(r => r.status);
         Promise.all([post('csrf_token=' + encodeURIComponent(csrf)), post('back=%2Fconsole%2F')]).then(done);",
        fleet.pg
    );
    assert_eq!(browser.run_async(&forged).await, serde_json::json!([403, 403]));
    let _ = browser.console_messages().await; // the two refusals, logged as failed loads
    let untouched = facade.get(&editor, &format!("/api/v1/instances/{}", fleet.pg)).await;
    untouched.expect(200, "OK");
    browser.close().await;
    support::databases::postgres_exec(&format!("DROP DATABASE \"{}\"", fleet.hostile_db)).await;
}

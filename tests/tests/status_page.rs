//! The status page in a real browser: ponte runs three units, unit 3's Firebird is shut down and
//! unit 2 has a dead letter; headless Chromium (Debian's `chromium`) opens `/` and `/unit/2`, and
//! what they show is checked against the real state: unit 3 down, units 1 and 2 up, unit 2's dead
//! letter with its reason and the `ponte dlq replay` command for it. A screenshot of each page is
//! saved under the test's output (target/tmp/status_page/).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::changes::{customer, outbox_row};
use ponte_tests::http::get;
use ponte_tests::tools::gfix;
use ponte_tests::upstream::wait_until;
use ponte_tests::{TestEnv, UnitSpec};

/// Headless Chromium: the page's DOM after its scripts ran, and a screenshot of it.
fn browse(url: &str, screenshot: &Path) -> String {
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--virtual-time-budget=6000",
    ];
    let dom = Command::new("chromium")
        .args(common)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("chromium is installed (deploy/setup.sh): {e}"));
    assert!(
        dom.status.success(),
        "chromium --dump-dom {url}: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let shot = Command::new("chromium")
        .args(common)
        .arg("--window-size=1400,900")
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("chromium runs: {e}"));
    assert!(
        shot.status.success() && screenshot.metadata().map(|m| m.len()).unwrap_or(0) > 5_000,
        "screenshot of {url} at {}: {}",
        screenshot.display(),
        String::from_utf8_lossy(&shot.stderr)
    );
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

/// The `<tr id="unit-N" ...>...</tr>` of the overview.
fn row(dom: &str, unit: i32) -> &str {
    let start = dom
        .find(&format!("<tr id=\"unit-{unit}\""))
        .unwrap_or_else(|| panic!("no row for unit {unit} in {dom}"));
    let end = dom[start..].find("</tr>").map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_status_page_shows_the_real_state_in_a_browser() {
    let units = [1, 2, 3].map(|id| UnitSpec {
        id,
        charset: "WIN1252",
    });
    let env = TestEnv::new(&units).await.expect("test environment");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    let addr = running.http_addr.expect("the http endpoint listens");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status_page");
    std::fs::create_dir_all(&out).unwrap();

    // Unit 3's server goes away; unit 2 gets a change its transform refuses (name too long).
    gfix(&["-shut", "full", "-force", "0"], &env.units[2].1);
    for unit in [1, 2, 3] {
        let row = customer(serde_json::json!({"id": 1000 + unit, "name": "Ana Conceição"}));
        outbox_row(&env, unit, "customers", &row).await;
    }
    let too_long = customer(serde_json::json!({"id": 2002, "name": "Ã".repeat(150)}));
    let poison = outbox_row(&env, 2, "customers", &too_long).await;
    let metrics = running.metrics.clone();
    wait_until(
        Duration::from_secs(90),
        "unit 3 reported down and unit 2's dead letter noted",
        || {
            let down = metrics.unit_up.with_label_values(&["3"]).get() == 0
                && metrics.unit_up.with_label_values(&["1"]).get() == 1;
            let dead = metrics.board.dead_letter_count(2) == 1;
            async move { Ok(down && dead) }
        },
    )
    .await
    .unwrap();
    let reason = metrics.board.dead_letters(2)[0].reason.clone();
    assert!(
        reason.contains("name") || reason.contains("NOME"),
        "{reason}"
    );

    let url = format!("http://{addr}/");
    let dom = browse(&url, &out.join("overview.png"));
    assert!(
        row(&dom, 1).contains("data-state=\"up\""),
        "{}",
        row(&dom, 1)
    );
    assert!(
        row(&dom, 2).contains("data-state=\"up\""),
        "{}",
        row(&dom, 2)
    );
    assert!(
        row(&dom, 3).contains("data-state=\"down\""),
        "{}",
        row(&dom, 3)
    );
    assert!(row(&dom, 2).contains("data-dead=\"1\""), "{}", row(&dom, 2));
    assert!(row(&dom, 1).contains("data-dead=\"0\""), "{}", row(&dom, 1));
    let words: String = reason
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == ' ')
        .collect();
    assert!(
        words.len() >= 8 && row(&dom, 2).contains(&words),
        "unit 2's row shows the reason ({words:?}): {}",
        row(&dom, 2)
    );
    assert!(
        dom.contains("id=\"units-down\"") && dom.contains("1 down"),
        "{dom}"
    );
    assert!(
        dom.contains("customers"),
        "the tables and their transforms: {dom}"
    );

    let detail = browse(&format!("http://{addr}/unit/2"), &out.join("unit-2.png"));
    assert!(
        detail.contains(&format!("ponte dlq replay {poison}")),
        "the unit page gives the replay command for {poison}: {detail}"
    );
    let healthy = browse(&format!("http://{addr}/unit/1"), &out.join("unit-1.png"));
    assert!(healthy.contains("id=\"no-dead-letters\""), "{healthy}");

    // The JSON the page renders says the same.
    let json: serde_json::Value = {
        let (status, body) = get(addr, "/status.json").await.unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let unit = |id: i64| {
        json["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["unit"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(unit(3)["up"], false);
    assert_eq!(unit(2)["dead_letters"], 1);
    assert!(unit(1)["applied"].as_f64().unwrap() >= 1.0);

    gfix(&["-online", "normal"], &env.units[2].1);
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}

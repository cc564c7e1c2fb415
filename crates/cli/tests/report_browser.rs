//! The training report in a real browser. `dl4rs train --report` on the bundled Fashion-MNIST
//! (2 epochs) and on the wine table (fed by the async prefetch thread, so a second thread's
//! ring workspace is in the view), then Debian's `chromium` opens each page headless
//! (`--headless --no-sandbox --disable-gpu`, a fresh `--user-data-dir`): `--dump-dom` gives the
//! DOM after the page's script ran, `--screenshot` a PNG. Checks: no script error (the page
//! writes any error into a `#js-errors` element, and the browser log has no `Uncaught`), the
//! self-check the page wrote (`#selfcheck`: the loss polyline has one point per recorded
//! iteration, one memory band per workspace, every chart drew something), and a screenshot
//! saved as a CI artifact in `$CARGO_TARGET_TMPDIR/report-browser/`. Without chromium the test
//! prints why and passes (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use dl4rs::nn::StatsFile;

fn dl4rs(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dl4rs"))
        .args(args)
        .output()
        .expect("run dl4rs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dl4rs {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        Command::new(name)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| PathBuf::from(name))
    })
}

/// Runs chromium headless on `html` with `extra` arguments; returns (stdout, stderr).
fn headless(browser: &Path, html: &Path, profile: &Path, extra: &[String]) -> (String, String) {
    let _ = std::fs::remove_dir_all(profile);
    std::fs::create_dir_all(profile).unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", html.canonicalize().unwrap().display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Opens the report, checks what it drew against its stats file, saves a screenshot.
fn check_in_browser(browser: &Path, html: &Path, stats: &StatsFile, name: &str, artifacts: &Path) {
    let profile = artifacts.join(format!("profile-{name}"));
    let (dom, log) = headless(browser, html, &profile, &["--dump-dom".to_string()]);
    assert!(
        !dom.contains("id=\"js-errors\""),
        "{name}: script errors in the page:\n{dom}"
    );
    for line in log.lines() {
        assert!(
            !(line.contains("Uncaught") || (line.contains("CONSOLE") && line.contains("rror"))),
            "{name}: console error: {line}"
        );
    }
    assert!(
        dom.contains("data-rendered=\"ok\""),
        "{name}: the page's script did not finish"
    );
    let start = dom.find("<pre id=\"selfcheck\">").expect("self-check") + 20;
    let end = start + dom[start..].find("</pre>").unwrap();
    let check: serde_json::Value =
        serde_json::from_str(&dom[start..end].replace("&quot;", "\"")).unwrap();
    println!("{name}: {check}");
    let n = |k: &str| check[k].as_i64().unwrap_or(-1);
    assert_eq!(
        n("loss_points"),
        stats.iterations.len() as i64,
        "{name}: one loss point per iteration"
    );
    assert_eq!(n("loss_smoothed_points"), stats.iterations.len() as i64);
    assert_eq!(n("throughput_points"), stats.iterations.len() as i64 - 1);
    assert_eq!(
        n("memory_bands"),
        stats.workspaces.len() as i64,
        "{name}: one band per workspace"
    );
    assert_eq!(n("epoch_markers"), stats.epochs.len() as i64);
    assert_eq!(
        n("ratio_lines"),
        stats.header.params.len() as i64,
        "{name}: one ratio line per parameter"
    );
    let eval = stats.evaluations.last().unwrap();
    assert_eq!(n("eval_markers"), stats.evaluations.len() as i64);
    assert_eq!(n("class_bars"), 3 * eval.classes.len() as i64);
    assert_eq!(
        n("confusion_cells"),
        (eval.confusion.len() * eval.confusion.len()) as i64
    );
    assert_eq!(n("roc_curves"), eval.roc.len() as i64);
    assert!(!eval.roc.is_empty(), "ROC computed at the end");
    assert_eq!(
        check["empty_charts"],
        serde_json::json!([]),
        "{name}: a chart drew nothing"
    );
    assert!(n("charts") >= 7, "{name}: charts {}", n("charts"));

    let png = artifacts.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    headless(
        browser,
        html,
        &profile,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1000,4200".to_string(),
            "--hide-scrollbars".to_string(),
        ],
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "{name}: screenshot"
    );
    println!("{name}: screenshot saved to {}", png.display());
}

#[test]
fn report_renders_in_a_real_browser() {
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&artifacts).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // The main job, 2 epochs, with its report.
    let html = artifacts.join("fashion.html");
    let out = dl4rs(&[
        "train",
        "--data",
        "bundled",
        "--epochs",
        "2",
        "--report",
        &s(&html),
        "--out",
        &s(&artifacts.join("fashion.safetensors")),
    ]);
    assert!(out.contains("report: "), "{out}");
    let stats_path = artifacts.join("fashion.stats.jsonl");
    let stats = StatsFile::read(&stats_path).unwrap();
    assert_eq!(stats.iterations.len(), 250);
    assert_eq!((stats.epochs.len(), stats.evaluations.len()), (2, 2));
    assert!(stats.finished);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("http-equiv=\"refresh\""),
        "the final report does not reload"
    );
    let urls = page.replace("http://www.w3.org/2000/svg", "");
    assert!(
        !urls.contains("http://") && !urls.contains("https://"),
        "no network resources (only the SVG namespace)"
    );
    assert!(
        !page.contains("<link") && !page.contains("src="),
        "self-contained"
    );

    // `dl4rs report` draws the same page from the stats file.
    let again = artifacts.join("again.html");
    dl4rs(&["report", &s(&stats_path), "-o", &s(&again)]);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), page);

    // CSV data through the prefetch thread: its ring is in the view, from another thread.
    let wine_html = artifacts.join("wine.html");
    let wine = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/tabular/wine.csv");
    dl4rs(&[
        "train",
        "--data",
        wine,
        "--skip-lines",
        "1",
        "--label-column",
        "13",
        "--classes",
        "3",
        "--batch",
        "16",
        "--epochs",
        "4",
        "--report",
        &s(&wine_html),
        "--out",
        &s(&artifacts.join("wine.safetensors")),
    ]);
    let wine_stats = StatsFile::read(artifacts.join("wine.stats.jsonl")).unwrap();
    let ring = wine_stats
        .workspaces
        .iter()
        .find(|w| w.cyclic)
        .expect("the prefetch ring is recorded");
    let trainer = wine_stats
        .workspaces
        .iter()
        .find(|w| w.id.starts_with("WS_ALL_LAYERS_ACT"))
        .unwrap();
    assert_ne!(
        ring.thread_index, trainer.thread_index,
        "{:?}",
        wine_stats.workspaces
    );

    let Some(browser) = chromium() else {
        println!(
            "SKIPPED the browser checks: chromium is not installed (Debian: apt-get install \
             chromium; .ci/run installs it)"
        );
        return;
    };
    check_in_browser(&browser, &html, &stats, "fashion", &artifacts);
    check_in_browser(&browser, &wine_html, &wine_stats, "wine", &artifacts);
}

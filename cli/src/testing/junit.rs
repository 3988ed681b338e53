//! The services' results as one JUnit XML report, as CI systems read them: a `<testsuite>` per
//! service, a `<testcase>` per test (or one for the whole suite when its output named none).

use super::e2e::E2eResult;
use super::{Outcome, ServiceResult, Verdict};

/// The report of a `plat test` run.
pub fn services(results: &[ServiceResult]) -> String {
    let mut suites = String::new();
    let (mut total, mut total_failures) = (0, 0);
    for result in results {
        let suite = format!("service.{}", result.service);
        let mut cases = String::new();
        let (mut tests, mut failures, mut skipped) = (0, 0, 0);
        let mut case = |name: &str, time: f64, body: Option<String>| {
            let open =
                format!("    <testcase classname=\"{}\" name=\"{}\" time=\"{time:.3}\"", escape(&suite), escape(name));
            match body {
                Some(body) => cases.push_str(&format!("{open}>\n{body}    </testcase>\n")),
                None => cases.push_str(&format!("{open}/>\n")),
            }
        };
        if result.tests.is_empty() {
            // One case for the suite: it passed, failed to run, was cached or skipped.
            tests += 1;
            let time = result.took.map_or(0.0, |took| took.as_secs_f64());
            let body = match result.verdict {
                Verdict::Passed => None,
                Verdict::Failed => {
                    failures += 1;
                    Some(failure(result.reason.as_deref().unwrap_or("failed"), result.output.as_deref()))
                }
                Verdict::Cached => {
                    skipped += 1;
                    Some("      <skipped message=\"cached: passed before with the same inputs\"/>\n".to_owned())
                }
                Verdict::Skipped => {
                    skipped += 1;
                    Some(format!(
                        "      <skipped message=\"{}\"/>\n",
                        escape(result.reason.as_deref().unwrap_or("skipped"))
                    ))
                }
            };
            case(&result.command, time, body);
        }
        for test in &result.tests {
            tests += 1;
            let time = test.took.map_or(0.0, |took| took.as_secs_f64());
            let body = match &test.outcome {
                Outcome::Passed => None,
                Outcome::Failed(message) => {
                    failures += 1;
                    Some(failure(message.lines().next().unwrap_or("failed"), Some(message)))
                }
                Outcome::Ignored => {
                    skipped += 1;
                    Some("      <skipped message=\"ignored\"/>\n".to_owned())
                }
            };
            case(&test.name, time, body);
        }
        total += tests;
        total_failures += failures;
        suites.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\">\n{cases}  </testsuite>\n",
            escape(&suite)
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"plat test\" tests=\"{total}\" \
         failures=\"{total_failures}\">\n{suites}</testsuites>\n"
    )
}

/// The report of a `plat test --e2e` run: one suite, one case for the command.
pub fn e2e(result: &E2eResult) -> String {
    let failures = usize::from(!result.passed);
    let time = result.took.map_or(0.0, |took| took.as_secs_f64());
    let open = format!("    <testcase classname=\"e2e\" name=\"{}\" time=\"{time:.3}\"", escape(&result.command));
    let case = if result.passed {
        format!("{open}/>\n")
    } else {
        format!("{open}>\n{}    </testcase>\n", failure(&format!("exited with {}", result.status), None))
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"plat test --e2e\" tests=\"1\" \
         failures=\"{failures}\">\n  <testsuite name=\"e2e\" tests=\"1\" failures=\"{failures}\" \
         skipped=\"0\">\n{case}  </testsuite>\n</testsuites>\n"
    )
}

fn failure(message: &str, body: Option<&str>) -> String {
    format!("      <failure message=\"{}\">{}</failure>\n", escape(message), escape(body.unwrap_or(message)))
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            // XML 1.0 allows no other control characters, even escaped.
            c if c.is_control() && !matches!(c, '\n' | '\r' | '\t') => escaped.push('\u{fffd}'),
            c => escaped.push(c),
        }
    }
    escaped
}

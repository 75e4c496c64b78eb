//! The native host mock behind `outpost_guest::host`.

use outpost_guest::{LoadSignals, LogLevel, host, testing};

#[test]
fn config_and_typed_helpers() {
    testing::set_config(&[
        ("b", "2"),
        ("a", "1"),
        ("flag", "On"),
        ("bad", "x"),
        ("list", " a, ,b "),
    ]);
    assert_eq!(host::config("a").as_deref(), Some("1"));
    assert_eq!(host::config("zzz"), None);
    assert_eq!(host::config_all()[0], ("a".to_string(), "1".to_string()));
    assert!(host::config_bool("flag", false));
    assert!(host::config_bool("absent", true));
    assert_eq!(host::config_parse::<u32>("b"), Some(2));
    assert_eq!(host::config_parse::<u32>("bad"), None);
    assert!(!host::config_bool("bad", false));
    assert_eq!(
        host::config_list("list"),
        Some(vec!["a".to_string(), "b".to_string()])
    );
    let logs = testing::take_logs();
    assert_eq!(logs.len(), 2);
    assert!(logs.iter().all(|(l, _)| *l == LogLevel::Warn));
    assert!(testing::logs().is_empty());
}

#[test]
fn load_clocks_and_logs() {
    testing::reset();
    assert_eq!(host::load(), LoadSignals::default());
    testing::set_load(LoadSignals::with_utilization(0.75));
    assert_eq!(host::load().utilization, 0.75);
    testing::set_unix_time(1_700_000_000);
    assert_eq!(host::unix_time(), 1_700_000_000);
    testing::set_now_ns(5);
    assert_eq!(host::now_ns(), 5);
    host::info("hello");
    host::log(LogLevel::Error, "boom");
    assert_eq!(
        testing::logs(),
        vec![
            (LogLevel::Info, "hello".to_string()),
            (LogLevel::Error, "boom".to_string())
        ]
    );
    testing::reset();
    assert!(host::unix_time() > 1_600_000_000);
    assert!(testing::logs().is_empty());
}

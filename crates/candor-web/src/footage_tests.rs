use super::{Unsatisfiable, parse_range};

#[test]
fn one_user_runs_at_most_the_cap_of_exports_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = std::sync::Arc::new(crate::accounts::Accounts::open(dir.path()).unwrap());
    let app = crate::state(accounts, None);
    let held: Vec<_> = (0..super::MAX_EXPORTS_PER_USER)
        .map(|_| super::ExportSlot::take(&app, "u").unwrap())
        .collect();
    let refused = super::ExportSlot::take(&app, "u").err().unwrap();
    assert_eq!(refused.code, "too_many_exports");
    // Another user is not affected; a finished export frees its slot.
    assert!(super::ExportSlot::take(&app, "other").is_ok());
    drop(held);
    assert!(super::ExportSlot::take(&app, "u").is_ok());
    assert!(app.exports.lock().unwrap().is_empty());
}

#[test]
fn range_headers_parse_as_rfc9110_says() {
    assert_eq!(parse_range("bytes=0-", 100), Ok(Some(0..100)));
    assert_eq!(parse_range("bytes=10-19", 100), Ok(Some(10..20)));
    assert_eq!(parse_range("bytes=90-200", 100), Ok(Some(90..100)));
    assert_eq!(parse_range("bytes=-10", 100), Ok(Some(90..100)));
    assert_eq!(parse_range("bytes=-1000", 100), Ok(Some(0..100)));
    assert_eq!(parse_range("bytes=100-", 100), Err(Unsatisfiable));
    assert_eq!(parse_range("bytes=-0", 100), Err(Unsatisfiable));
    assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
    assert_eq!(parse_range("items=0-1", 100), Ok(None));
    assert_eq!(parse_range("bytes=x-1", 100), Err(Unsatisfiable));
    assert_eq!(parse_range("bytes=5-1", 100), Ok(None));
}

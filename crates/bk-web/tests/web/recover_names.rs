//! The recovery of names that hold any byte but `/` and NUL: ticked in
//! the selection tree by their parameter form, recovered under their
//! exact bytes.

use actix_web::http::StatusCode;
use actix_web::test;
use bk_core::location::RepoLocation;
use bk_web::WebOptions;

use crate::common::*;
use crate::recover::{enc, hidden_fields, q, unhtml};

#[actix_web::test]
async fn names_with_any_byte_are_ticked_and_recovered_exactly() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let root = tmp.path().join("root").canonicalize().unwrap();
    let ds = root.join("odd");
    std::fs::create_dir_all(&ds).unwrap();
    let names: [&[u8]; 4] = [
        b"bad\xffutf8.bin",
        b"tab\there \"q\"",
        b"back\\slash",
        b"plain.txt",
    ];
    for (i, n) in names.iter().enumerate() {
        let p = ds.join(std::ffi::OsStr::from_bytes(n));
        std::fs::write(p, bytes(i as u64 + 10, 1000 + i)).unwrap();
    }
    let st = state(
        WebOptions::new()
            .repo(RepoLocation::Local(tmp.path().join("repo")))
            .allow_root(&root),
    );
    let app = test::init_service(App::new().configure(bk_web::configure(st.clone()))).await;
    let mut b = Browser::new();
    b.get(&app, "/").await;
    b.post(&app, "/connect", &[("address", "")]).await;
    b.get(&app, "/").await;
    let p = ds.display().to_string();
    let id = b
        .post(
            &app,
            "/backup",
            &[("side", "local"), ("path", &p), ("dataset", "odd")],
        )
        .await
        .job_id();
    assert_eq!(wait_job(&st, id).state, "done");
    let out = root.join("out");
    let base = format!(
        "dataset=odd&which=id&id=0&scope=some&dest=local&out={}",
        q(out.display().to_string().as_bytes())
    );
    // The tree: each checkbox's value is the name's parameter form, its
    // data-name the readable name.
    let r = b.get(&app, &format!("/restore/select?{base}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body
            .contains("value=\"bad%FFutf8.bin\" data-name=\"bad\\xFFutf8.bin\""),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("value=\"back%5Cslash\" data-name=\"back\\slash\""),
        "{}",
        r.body
    );
    // Tick the three odd ones (as a browser sends the values).
    let sel: String = names[..3]
        .iter()
        .map(|n| format!("&path={}", enc(enc(n).as_bytes())))
        .collect();
    let r = b.get(&app, &format!("/restore/next?{base}{sel}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let fields = hidden_fields(&unhtml(&r.body));
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| *k != "csrf")
        .collect();
    let id = b.post(&app, "/restore", &form).await.job_id();
    let j = wait_job(&st, id);
    assert_eq!(j.state, "done", "{:?}", j.error);
    let mut got: Vec<(Vec<u8>, Vec<u8>)> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().as_bytes().to_vec(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(Vec<u8>, Vec<u8>)> = names[..3]
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_vec(), bytes(i as u64 + 10, 1000 + i)))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

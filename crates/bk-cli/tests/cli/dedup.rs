//! Only modifications cost anything: stored bytes measured per backup.

use std::fs;

use crate::common::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

fn stored(v: &serde_json::Value) -> u64 {
    v["stored_bytes"].as_u64().expect("stored_bytes")
}

#[test]
fn unchanged_tree_stores_almost_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("d");
    for i in 0..300 {
        let dir = src.join(format!("dir{}", i % 7));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("f{i}")),
            random_bytes(i, 3000 + i as usize),
        )
        .unwrap();
    }
    let repo = tmp.path().join("repo");
    let first = backup(&repo, &src, &[], 0);
    assert!(stored(&first) > 300 * 3000, "{first}");
    let again = backup(&repo, &src, &[], 0);
    assert!(
        stored(&again) < 64 * KIB,
        "unchanged re-backup stored {}",
        stored(&again)
    );
    assert_eq!(
        (
            again["added"].as_u64(),
            again["modified"].as_u64(),
            again["deleted"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );
    // --full re-reads everything but still stores nothing new.
    let full = backup(&repo, &src, &["--full"], 0);
    assert!(
        stored(&full) < 64 * KIB,
        "full re-backup stored {}",
        stored(&full)
    );
    assert_eq!(full["full"], true);
}

#[test]
fn big_file_edits_store_only_changed_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big");
    fs::create_dir(&src).unwrap();
    let f = src.join("blob.bin");
    let mut data = random_bytes(7, 64 * MIB as usize);
    fs::write(&f, &data).unwrap();
    let repo = tmp.path().join("repo");
    let first = backup(&repo, &src, &[], 0);
    assert!(
        stored(&first) >= 64 * MIB,
        "random data does not compress: {first}"
    );

    // One byte in the middle.
    data[32 * MIB as usize + 12345] ^= 0xff;
    fs::write(&f, &data).unwrap();
    let one = backup(&repo, &src, &[], 0);
    assert_eq!(one["modified"], 1);
    assert!(
        stored(&one) < 4 * MIB,
        "one changed byte stored {}",
        stored(&one)
    );

    // 100 bytes inserted near the start.
    data.splice(1000..1000, std::iter::repeat_n(0xabu8, 100));
    fs::write(&f, &data).unwrap();
    let ins = backup(&repo, &src, &[], 0);
    assert!(
        stored(&ins) < 4 * MIB,
        "an insertion stored {}",
        stored(&ins)
    );

    // And the last version restores exactly.
    let out = tmp.path().join("out");
    let o = restore(&repo, "big", &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(fs::read(out.join("blob.bin")).unwrap() == data);
}

#[test]
fn renamed_directory_stores_only_trees() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ds");
    let d = src.join("some dir");
    fs::create_dir_all(&d).unwrap();
    for i in 0..200 {
        fs::write(
            d.join(format!("file {i}.json")),
            random_bytes(1000 + i, 2000),
        )
        .unwrap();
    }
    let repo = tmp.path().join("repo");
    backup(&repo, &src, &[], 0);
    fs::rename(&d, src.join("renamed dir")).unwrap();
    let r = backup(&repo, &src, &[], 0);
    assert!(stored(&r) < 64 * KIB, "rename stored {}", stored(&r));
    assert_eq!(r["added"], 200);
    assert_eq!(r["deleted"], 200);
}

#[test]
fn identical_content_across_datasets_is_stored_once() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    let content = random_bytes(99, 3 * MIB as usize);
    fs::write(a.join("x"), &content).unwrap();
    fs::write(b.join("copy of x"), &content).unwrap();
    let repo = tmp.path().join("repo");
    backup(&repo, &a, &[], 0);
    let sb = backup(&repo, &b, &[], 0);
    assert_eq!(sb["dataset"], "b");
    assert_eq!(sb["id"], 0);
    assert!(stored(&sb) < 64 * KIB, "{sb}");
}

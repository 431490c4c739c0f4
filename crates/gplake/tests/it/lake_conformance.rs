//! One conformance suite, run against every lake backend: memory, local folder, a real
//! S3-compatible server and a real Azure emulator (Azurite), both on 127.0.0.1.

use bytes::Bytes;
use object_store::path::Path;

use crate::support::{Backend, snapshot};

#[tokio::test]
async fn put_get_head_delete() {
    for (backend, lake) in Backend::all().await {
        let name = backend.name();
        let path = Path::from("a/b/c.csv");
        assert_eq!(lake.get_bytes(&path).await.unwrap(), None, "{name}");
        assert!(lake.head(&path).await.unwrap().is_none(), "{name}");
        lake.put_bytes(&path, Bytes::from_static(b"x,y\r\n1,2\r\n"))
            .await
            .unwrap();
        assert_eq!(
            lake.get_bytes(&path).await.unwrap().unwrap().as_ref(),
            b"x,y\r\n1,2\r\n",
            "{name}"
        );
        assert_eq!(lake.head(&path).await.unwrap().unwrap().size, 10, "{name}");
        lake.delete(&path).await.unwrap();
        lake.delete(&path).await.unwrap();
        assert_eq!(lake.get_bytes(&path).await.unwrap(), None, "{name}");
    }
}

#[tokio::test]
async fn create_only_if_absent() {
    for (backend, lake) in Backend::all().await {
        let name = backend.name();
        let path = Path::from("locks/one");
        assert!(
            lake.put_if_absent(&path, Bytes::from_static(b"first"))
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            !lake
                .put_if_absent(&path, Bytes::from_static(b"second"))
                .await
                .unwrap(),
            "{name}"
        );
        assert_eq!(
            lake.get_bytes(&path).await.unwrap().unwrap().as_ref(),
            b"first",
            "{name}"
        );
    }
}

#[tokio::test]
async fn multipart_upload_is_whole_and_leaves_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("big.bin");
    // 9 MiB + a bit: two parts of 8 MiB and a tail.
    let bytes: Vec<u8> = (0..(9 * 1024 * 1024 + 17))
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&local, &bytes).unwrap();
    for (backend, lake) in Backend::all().await {
        let name = backend.name();
        let path = Path::from("bronze/big.bin");
        lake.upload_file(&path, &local).await.unwrap();
        assert!(
            lake.get_bytes(&path).await.unwrap().unwrap().as_ref() == bytes.as_slice(),
            "{name}: bytes differ"
        );
        let listed: Vec<String> = snapshot(&lake).await.into_iter().map(|s| s.0).collect();
        assert_eq!(listed, ["bronze/big.bin"], "{name}");
        if let Backend::Local(dir) = &backend {
            let on_disk: Vec<_> = std::fs::read_dir(dir.path().join("bronze"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(on_disk, ["big.bin"], "no staging files left behind");
        }
    }
}

#[tokio::test]
async fn copy_and_list() {
    for (backend, lake) in Backend::all().await {
        let name = backend.name();
        lake.put_bytes(&Path::from("m/x.csv"), Bytes::from_static(b"1"))
            .await
            .unwrap();
        lake.copy(
            &Path::from("m/x.csv"),
            &Path::from("m/_revisions/abc/x.csv"),
        )
        .await
        .unwrap();
        lake.put_bytes(&Path::from("other/y.csv"), Bytes::from_static(b"2"))
            .await
            .unwrap();
        let mut under_m: Vec<String> = lake
            .list(&Path::from("m"))
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.location.to_string())
            .collect();
        under_m.sort();
        assert_eq!(under_m, ["m/_revisions/abc/x.csv", "m/x.csv"], "{name}");
    }
}

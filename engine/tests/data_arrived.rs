//! `Partition::data_arrived`: the notification a long-polling fetch waits on.

mod common;

use std::time::Duration;

use common::make_batch;
use corelog_engine::log::LogConfig;
use corelog_engine::partition::AckPoint;
use corelog_engine::runtime;
use corelog_engine::storage::ShardStorage;

#[test]
fn data_arrived_resolves_when_the_high_watermark_moves() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let storage = ShardStorage::new(dir.path()).unwrap();
        let (p, _) = storage
            .open_partition("t", 0, LogConfig::default())
            .unwrap();
        let waiter = {
            let p = p.clone();
            runtime::spawn(async move {
                p.data_arrived().await;
                p.log().high_watermark()
            })
        };
        runtime::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "nothing was appended yet");
        let info = p
            .append(make_batch(1, 3, 10), AckPoint::Written)
            .await
            .unwrap();
        assert_eq!(waiter.await, info.last_offset + 1);
    });
}

//! Id allocation against the real API server: concurrent allocators never
//! hand out the same number.

use std::collections::BTreeSet;

use dbfleet::ids::{IdAllocator, IdKind};

use crate::support;

#[tokio::test]
async fn concurrent_allocators_never_share_an_id() {
    let (client, ns) = support::admin_in_fresh_namespace("ids").await;
    // Separate allocators, as separate façade replicas and the controller are.
    let allocations = (0..50).map(|i| {
        let allocator = IdAllocator::new(client.clone(), &ns);
        let kind = if i % 5 == 0 { IdKind::Tag } else { IdKind::Instance };
        async move { (kind, allocator.allocate(kind).await.unwrap()) }
    });
    let results = futures_util::future::join_all(allocations).await;
    let instance_ids: BTreeSet<i64> = results
        .iter()
        .filter(|(k, _)| *k == IdKind::Instance)
        .map(|(_, id)| *id)
        .collect();
    let tag_ids: BTreeSet<i64> = results
        .iter()
        .filter(|(k, _)| *k == IdKind::Tag)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(instance_ids, (1..=40).collect(), "instance ids are 1..=40, each once");
    assert_eq!(tag_ids, (1..=10).collect(), "tag ids count separately");

    // The counter carries on; nothing is reused.
    let next = IdAllocator::new(client, &ns).allocate(IdKind::Instance).await.unwrap();
    assert_eq!(next, 41);
}

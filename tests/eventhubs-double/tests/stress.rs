//! Many sends from the real client, four partitions at a time: the double records every event
//! of every accepted batch, under concurrency, exactly as sent. Each send is bounded by a
//! timeout: fe2o3-amqp 0.16 (the client's AMQP stack) can lose an outcome that beats its own
//! bookkeeping (see `DoubleConfig::settle_delay`), and a send it loses never completes. Such a
//! send is counted, and resent on a fresh client, as the relay does; with the default settle
//! delay it does not happen on an idle machine, but a badly overloaded one can still stall the
//! client long enough.

use std::collections::HashMap;
use std::time::Duration;

use azure_messaging_eventhubs::models::EventData;
use azure_messaging_eventhubs::{EventDataBatchOptions, ProducerClient};
use eventhubs_double::Double;

async fn client(double: &Double) -> ProducerClient {
    ProducerClient::builder()
        .with_custom_endpoint(double.endpoint())
        .open_with_connection_string(&double.connection_string(), None)
        .await
        .unwrap()
}

/// Sends one batch of five events to a partition; `None` when the send never completed.
async fn send(client: &ProducerClient, round: usize, p: usize) -> Option<()> {
    let options = EventDataBatchOptions {
        partition_id: Some(p.to_string()),
        ..Default::default()
    };
    let batch = client.create_batch(Some(options)).await.unwrap();
    for j in 0..5 {
        let body = format!("{round}-{p}-{j}").into_bytes();
        assert!(batch
            .try_add_event_data(EventData::builder().with_body(body).build(), None)
            .unwrap());
    }
    match tokio::time::timeout(Duration::from_secs(10), client.send_batch(batch, None)).await {
        Ok(result) => {
            result.unwrap();
            Some(())
        }
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_are_recorded_exactly_as_sent() {
    let double = Double::start().await.unwrap();
    let mut producer = client(&double).await;
    let rounds = 100;
    let mut lost = 0;
    for round in 0..rounds {
        let results = futures::future::join_all((0..4).map(|p| send(&producer, round, p))).await;
        for (p, r) in results.into_iter().enumerate() {
            if r.is_none() {
                lost += 1;
                producer = client(&double).await;
                send(&producer, round, p)
                    .await
                    .expect("a resend on a fresh client completes");
            }
        }
    }
    eprintln!(
        "outcomes lost by the client: {lost} of {} sends",
        rounds * 4
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in double.events() {
        *seen.entry(e.body_str()).or_default() += 1;
        assert!(e.batched);
        assert_eq!(e.partition.as_deref(), e.body_str().split('-').nth(1));
    }
    assert_eq!(
        seen.len(),
        rounds * 4 * 5,
        "every event of every batch recorded"
    );
    let extra: usize = seen.values().map(|n| n - 1).sum();
    assert!(
        extra <= lost * 5,
        "copies only where a lost outcome forced a resend"
    );
}

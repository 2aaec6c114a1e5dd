//! Many sends from the real client, four partitions at a time, each bounded by a timeout: with
//! the double's default settle delay no send may wait forever. (With `settle_delay: 0` this
//! fails within a few rounds on localhost: fe2o3-amqp 0.16 drops a disposition that beats the
//! sender's own bookkeeping; see `DoubleConfig::settle_delay`.)

use std::time::Duration;

use azure_messaging_eventhubs::models::EventData;
use azure_messaging_eventhubs::{EventDataBatchOptions, ProducerClient};
use eventhubs_double::Double;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_never_lose_their_outcome() {
    let double = Double::start().await.unwrap();
    let client = ProducerClient::builder()
        .with_custom_endpoint(double.endpoint())
        .open_with_connection_string(&double.connection_string(), None)
        .await
        .unwrap();
    let rounds = 100;
    for round in 0..rounds {
        let sends = (0..4).map(|p| {
            let client = &client;
            async move {
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
                tokio::time::timeout(Duration::from_secs(10), client.send_batch(batch, None)).await
            }
        });
        for (p, r) in futures::future::join_all(sends)
            .await
            .into_iter()
            .enumerate()
        {
            r.unwrap_or_else(|_| panic!("round {round}, partition {p}: the send never completed"))
                .unwrap();
        }
    }
    assert_eq!(double.recorder().len(), rounds * 4 * 5);
    client.close().await.unwrap();
}

//! The double against the real `azure_messaging_eventhubs` ProducerClient on a real socket:
//! if these pass, the double speaks enough of the Event Hubs wire protocol for the relay tests.

use std::time::Duration;

use azure_messaging_eventhubs::models::{AmqpSimpleValue, EventData};
use azure_messaging_eventhubs::{
    EventDataBatchOptions, ProducerClient, RetryOptions, SendEventOptions,
};
use eventhubs_double::{Double, DoubleConfig, Rejection};

const WAIT: Duration = Duration::from_secs(20);

async fn producer(double: &Double) -> ProducerClient {
    ProducerClient::builder()
        .with_custom_endpoint(double.endpoint())
        .with_retry_options(RetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(50),
            max_delay: azure_core::time::Duration::milliseconds(200),
            max_retries: 3,
            max_total_elapsed: azure_core::time::Duration::seconds(5),
        })
        .open_with_connection_string(&double.connection_string(), None)
        .await
        .expect("the producer opens against the double")
}

fn event(body: &str) -> EventData {
    EventData::builder()
        .with_body(body.as_bytes().to_vec())
        .with_content_type("application/json".to_string())
        .add_property("type".to_string(), AmqpSimpleValue::String("track".into()))
        .build()
}

#[tokio::test]
async fn get_eventhub_properties_reports_the_hub() {
    let double = Double::start_with(DoubleConfig {
        partition_count: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = producer(&double).await;
    let props = client.get_eventhub_properties().await.unwrap();
    assert_eq!(props.name, "clicks");
    assert_eq!(props.partition_ids, vec!["0", "1", "2"]);
    assert!(props.created_on.is_some());
    client.close().await.unwrap();
}

#[tokio::test]
async fn send_event_is_recorded_with_its_metadata() {
    let double = Double::start().await.unwrap();
    let client = producer(&double).await;
    client
        .send_event(
            event(r#"{"event":"one"}"#),
            Some(SendEventOptions {
                partition_id: Some("2".into()),
            }),
        )
        .await
        .unwrap();
    let got = double.wait_for_events(1, WAIT).await.unwrap();
    assert_eq!(got.len(), 1);
    let e = &got[0];
    assert_eq!(e.body_str(), r#"{"event":"one"}"#);
    assert_eq!(e.content_type.as_deref(), Some("application/json"));
    assert_eq!(e.properties.get("type"), Some(&serde_json::json!("track")));
    assert_eq!(e.partition.as_deref(), Some("2"));
    assert!(e.target.ends_with("/clicks/Partitions/2"), "{}", e.target);
    assert!(!e.batched);
    let tokens = double.recorder().tokens();
    assert!(
        tokens
            .iter()
            .any(|t| t.token_type == "servicebus.windows.net:sastoken"
                && t.audience.ends_with("/clicks/Partitions/2")),
        "a SAS token was put for the partition link: {tokens:?}"
    );
    assert!(
        e.message_id.as_deref().is_some_and(|id| id.len() == 36),
        "{:?}",
        e.message_id
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn send_batch_arrives_as_one_transfer_of_n_events() {
    let double = Double::start().await.unwrap();
    let client = producer(&double).await;
    let batch = client
        .create_batch(Some(EventDataBatchOptions {
            partition_key: Some("user-7".into()),
            ..Default::default()
        }))
        .await
        .unwrap();
    for i in 0..50 {
        assert!(batch
            .try_add_event_data(event(&format!(r#"{{"n":{i}}}"#)), None)
            .unwrap());
    }
    client.send_batch(batch, None).await.unwrap();
    let got = double.wait_for_events(50, WAIT).await.unwrap();
    assert_eq!(
        double.recorder().accepted_transfers(),
        1,
        "a batch is one transfer"
    );
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.body_str(), format!(r#"{{"n":{i}}}"#));
        assert!(e.batched);
        assert_eq!(e.partition_key.as_deref(), Some("user-7"));
        assert_eq!(
            e.partition, None,
            "a keyed batch goes to the hub, not a partition"
        );
    }
    let ids: std::collections::HashSet<_> =
        got.iter().map(|e| e.message_id.clone().unwrap()).collect();
    assert_eq!(ids.len(), 50, "every event has its own message-id");
    client.close().await.unwrap();
}

#[tokio::test]
async fn batches_are_sized_by_the_max_message_size_the_double_reports() {
    let double = Double::start_with(DoubleConfig {
        max_message_size: 4096,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = producer(&double).await;
    let batch = client.create_batch(None).await.unwrap();
    let body = "x".repeat(1000);
    let mut added = 0;
    while batch.try_add_event_data(event(&body), None).unwrap() {
        added += 1;
    }
    assert!(
        (1..4).contains(&added),
        "a 4 KiB link fits fewer than 4 events of 1 KB, fitted {added}"
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn rejected_transfer_surfaces_to_the_client_and_the_next_one_passes() {
    let double = Double::start().await.unwrap();
    let client = producer(&double).await;
    double
        .faults()
        .reject_next(1, Rejection::new("amqp:not-allowed", "injected"));
    let err = client.send_event(event("{}"), None).await.unwrap_err();
    assert!(
        format!("{err:?}").contains("not-allowed") || format!("{err:?}").contains("NotAllowed"),
        "{err:?}"
    );
    assert_eq!(double.faults().rejected(), 1);
    assert!(
        double.events().is_empty(),
        "a rejected event is not recorded"
    );
    client.send_event(event("{}"), None).await.unwrap();
    double.wait_for_events(1, WAIT).await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test]
async fn events_over_the_size_limit_are_rejected() {
    let double = Double::start().await.unwrap();
    double.faults().reject_events_larger_than(Some(100));
    let client = producer(&double).await;
    let err = client
        .send_event(event(&"y".repeat(101)), None)
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").to_lowercase().contains("size"),
        "{err:?}"
    );
    client
        .send_event(event(&"y".repeat(100)), None)
        .await
        .unwrap();
    assert_eq!(
        double.wait_for_events(1, WAIT).await.unwrap()[0].body.len(),
        100
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn killed_and_restarted_on_the_same_port_the_client_reconnects() {
    let mut double = Double::start().await.unwrap();
    let client = producer(&double).await;
    client.send_event(event("before"), None).await.unwrap();
    let port = double.addr().port();
    double.kill();
    // Let the client see the dropped socket first: a send already in flight when the
    // connection dies can wait forever for its disposition (the relay guards sends with a
    // timeout for exactly that reason).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let down = tokio::time::timeout(WAIT, client.send_event(event("while down"), None)).await;
    assert!(
        down.expect("a send while down fails, it does not hang")
            .is_err(),
        "nothing listens while killed"
    );
    double.restart().await.unwrap();
    assert_eq!(double.addr().port(), port);
    let mut sent = false;
    for _ in 0..20 {
        if let Ok(Ok(())) =
            tokio::time::timeout(WAIT, client.send_event(event("after"), None)).await
        {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(sent, "the client recovers once the double is back");
    let bodies: Vec<String> = double
        .wait_for_events(2, WAIT)
        .await
        .unwrap()
        .iter()
        .map(|e| e.body_str())
        .collect();
    assert_eq!(
        bodies,
        vec!["before", "after"],
        "the recorder survives the restart"
    );
}

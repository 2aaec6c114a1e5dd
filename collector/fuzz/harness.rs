//! The fuzz targets' bodies, shared by the cargo-fuzz binaries (`fuzz_targets/`) and by the
//! collector's own test suite (`collector/tests/fuzz_corpus.rs`), which replays the committed
//! corpus on every `cargo test` so the harness keeps compiling against the collector's API.
//!
//! Each function takes arbitrary bytes, drives the real ingest code, and panics only when an
//! invariant breaks; any other panic inside the collector is a finding too.

// Each fuzz binary uses one of the two targets.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use collector::config::IpMode;
use collector::ingest::enrich::{Enricher, RequestInfo};
use collector::ingest::event::{kind, Event, Kind};
use collector::ingest::inflight::InFlight;
use collector::ingest::message::{self, MessageType, MAX_BATCH_EVENTS};
use collector::ingest::{decode, pixel_data, screen, validate, ApiError};
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use serde::de::IgnoredAny;

/// A small body cap, so the fuzzer reaches the 413 paths with short inputs.
pub const MAX_BODY: usize = 16 * 1024;

fn check_error(e: &ApiError) {
    assert!(
        e.status.is_client_error(),
        "a whole-request error is a 4xx: {e:?}"
    );
    assert!(!e.message.is_empty(), "an error names the problem");
}

fn is_json(text: &[u8]) -> bool {
    serde_json::from_slice::<IgnoredAny>(text).is_ok()
}

/// `decode_request`: the first byte picks the endpoint, the content type, the encoding and the
/// Content-Length header; the rest is the body (or, for the pixel, the query string).
pub fn decode_request(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let endpoint = selector % 3; // batch, single, pixel
    let encoding = (selector / 3) % 4; // none, gzip (compressed here), "gzip" over raw bytes, br
    let content_type = (selector / 12) % 4;
    let wrong_length = (selector / 48) % 2 == 1;

    if endpoint == 2 {
        let query = String::from_utf8_lossy(body);
        match pixel_data(Some(&query)) {
            Ok(json) => parse(&json, false),
            Err(e) => check_error(&e),
        }
        return;
    }

    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(match content_type {
            0 => "application/json",
            1 => "text/plain;charset=UTF-8",
            2 => "application/vnd.segment+json; charset=utf-8",
            _ => "application/xml",
        }),
    );
    let wire: Vec<u8> = match encoding {
        1 => {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
        _ => body.to_vec(),
    };
    match encoding {
        1 | 2 => {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        3 => {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
        }
        _ => {}
    }
    let length = if wrong_length {
        MAX_BODY as u64 + 1
    } else {
        wire.len() as u64
    };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));

    if let Err(e) = decode::check_content_type(&headers) {
        check_error(&e);
        assert_eq!(content_type, 3);
        return;
    }
    let mut held = InFlight::new(0).reservation();
    let read = futures::executor::block_on(decode::read_body(
        &headers,
        Full::new(Bytes::from(wire)),
        MAX_BODY,
        &mut held,
    ));
    match read {
        Ok(decoded) => {
            assert!(decoded.len() <= MAX_BODY, "the cap holds after gunzip");
            assert!(!wrong_length && encoding != 3);
            if encoding == 1 {
                assert_eq!(&decoded[..], body, "gzip round trip");
            }
            parse(&decoded, endpoint == 0);
        }
        Err(e) => check_error(&e),
    }
}

/// The envelope parse, and each event's top-level parse, as `Ingest::process` does them.
fn parse(body: &[u8], batch: bool) {
    let env = if batch {
        message::parse_batch(body)
    } else {
        message::parse_single(body)
    };
    let env = match env {
        Ok(env) => env,
        Err(e) => return check_error(&e),
    };
    // What passed the screen is JSON within the limits, and so is every event in it.
    assert!(screen::screen(body).is_ok());
    assert!(!env.events.is_empty() && env.events.len() <= MAX_BATCH_EVENTS);
    // The batch fast path reads what the general path reads.
    let general =
        batch.then(|| message::parse_batch_general(body).expect("the fast path accepted it"));
    let general_events = general.map(|g| g.events);
    for (i, item) in env.events.into_iter().enumerate() {
        let raw = item.raw;
        assert!(is_json(raw.as_bytes()), "{raw}");
        let parsed = item.into_event();
        if let Some(g) = &general_events {
            assert_eq!(g[i].raw, raw);
            assert_eq!(
                parsed.as_ref().map(|e| e.to_json()).ok(),
                Event::parse(g[i].raw).map(|e| e.to_json()).ok()
            );
        }
        if let Ok(ev) = parsed {
            let mut out = Vec::new();
            ev.write(&mut out);
            assert!(is_json(&out));
        }
    }
    for shared in [env.context, env.integrations].into_iter().flatten() {
        assert_eq!(kind(shared.get()), Kind::Object);
    }
}

/// `validate_enrich`: the first byte picks the route (batch or one of the single-message
/// endpoints) and the IP mode; the rest is `event 0xFF batch-context 0xFF user-agent` (0xFF
/// never occurs in UTF-8, so it splits the parts cleanly).
pub fn validate_enrich(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let route = match selector % 7 {
        0 => None,
        n => Some(MessageType::ALL[usize::from(n - 1)]),
    };
    let ip_mode = match (selector / 7) % 3 {
        0 => IpMode::Anonymize,
        1 => IpMode::Keep,
        _ => IpMode::Drop,
    };
    let mut parts = rest.split(|&b| b == 0xFF);
    let event_text = parts.next().unwrap_or_default();
    let context_text = parts.next();
    let user_agent = parts.next().and_then(|u| std::str::from_utf8(u).ok());
    let Ok(event_text) = std::str::from_utf8(event_text) else {
        return;
    };
    // In the collector every event has passed the body's screen first.
    if screen::screen(event_text.as_bytes()).is_err() {
        return;
    }
    let context = context_text
        .and_then(|c| std::str::from_utf8(c).ok())
        .filter(|c| screen::screen(c.as_bytes()).is_ok())
        .and_then(|c| Event::parse(c).ok());

    let Ok(mut ev) = Event::parse(event_text) else {
        return;
    };
    ev.remove("writeKey");
    let Ok(kind_of) = validate::validate(&mut ev, route) else {
        return;
    };
    if let Some(r) = route {
        assert_eq!(kind_of, r, "the route's type wins");
    }
    let enricher = Enricher::new(RequestInfo {
        received_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        client_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))),
        ip_mode,
        user_agent,
        write_key: Some("wk_fuzz"),
        source: None,
        sent_at: None,
        context: context.as_ref(),
        integrations: None,
    });
    if enricher.enrich(&mut ev).is_err() {
        return;
    }
    let mut out = Vec::new();
    ev.write(&mut out);
    let text = std::str::from_utf8(&out).expect("enriched events are UTF-8");
    assert!(is_json(text.as_bytes()), "enriched events are JSON: {text}");
    // Enrichment never duplicates a key, and fills what it promises. (It may take an event
    // with close to MAX_KEYS keys over that cap; such an output is still checked as JSON above.)
    let again = match Event::parse(text) {
        Ok(again) => again,
        Err(e) if e.starts_with("object has more than") => return,
        Err(e) => panic!("an enriched event parses again: {e}: {text}"),
    };
    assert_eq!(again.str("type").as_deref(), Some(kind_of.as_str()));
    for field in ["messageId", "receivedAt", "timestamp"] {
        assert!(again.str(field).is_some(), "{field} is set: {text}");
    }
    // Every time stored is RFC 3339 with a year from 0001 to 9999, whatever the client sent.
    for field in ["receivedAt", "timestamp", "sentAt", "originalTimestamp"] {
        if let Some(t) = again.str(field) {
            let year = t.get(..4).and_then(|y| y.parse::<u32>().ok());
            assert!(
                year.is_some_and(|y| (1..=9999).contains(&y))
                    && t.as_bytes().get(4) == Some(&b'-')
                    && chrono::DateTime::parse_from_rfc3339(&t).is_ok(),
                "{field} {t:?} is not an RFC 3339 time in years 0001-9999: {text}"
            );
        }
    }
    assert!(
        again
            .str("messageId")
            .is_some_and(|id| !id.trim().is_empty()),
        "an empty messageId is replaced: {text}"
    );
    assert_eq!(again.str("writeKey").as_deref(), Some("wk_fuzz"));
    assert_eq!(kind(again.get("context").unwrap()), Kind::Object);
}

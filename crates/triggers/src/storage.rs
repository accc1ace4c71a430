//! Storage triggers: a change to a bucket's objects becomes an asynchronous invocation of every
//! function whose storage trigger wants it, with the S3 event notification JSON Lambda functions
//! receive (inside a CloudEvent), delivered, retried and dead-lettered like any other event.

use std::collections::BTreeMap;

use serde_json::json;

use crate::envelope::{self, ATTR_ID, ATTR_KIND, ATTR_SOURCE, ATTR_TYPE, KIND_EVENT};
use crate::{ATTR_SUBJECT, TriggerError, Triggers, function_queue, new_id};
use yun_events::NewMessage;
use yun_types::Trigger;

/// One committed change to an object, as the object store reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectChange {
    /// S3's event name without `s3:`: `ObjectCreated:Put`, `ObjectRemoved:Delete`, ...
    pub event: String,
    pub bucket: String,
    pub key: String,
    /// Absent for a removal.
    pub size: Option<u64>,
    pub etag: Option<String>,
    /// Orders the changes of one key, as S3's `sequencer` does.
    pub sequencer: String,
    pub time_ms: u64,
}

impl Triggers {
    /// Stores an invocation for every storage trigger that wants `change`; returns how many.
    /// Only once this returns may the change be dropped from the store's outbox.
    pub async fn object_changed(&self, change: &ObjectChange, region: &str) -> Result<usize, TriggerError> {
        let wanted: Vec<(String, String)> = {
            let functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
            let mut out = Vec::new();
            for (function, state) in functions.iter() {
                let settings = state.settings.read().unwrap_or_else(|p| p.into_inner());
                for t in &settings.triggers {
                    if t.wants_object(&change.bucket, &change.event, &change.key) {
                        out.push((function.clone(), t.id().to_string()));
                    }
                }
            }
            out
        };
        for (function, trigger) in &wanted {
            let id = new_id();
            let body = serde_json::to_vec(&s3_event(change, trigger, region)).expect("json serializes");
            let mut attributes = BTreeMap::new();
            attributes.insert(ATTR_KIND.to_string(), KIND_EVENT.to_string());
            attributes.insert(ATTR_ID.to_string(), id);
            attributes.insert(ATTR_TYPE.to_string(), envelope::TYPE_STORAGE.to_string());
            attributes.insert(ATTR_SOURCE.to_string(), format!("/yun/storage/{}", change.bucket));
            attributes.insert(ATTR_SUBJECT.to_string(), change.key.clone());
            attributes.insert("content-type".to_string(), "application/json".to_string());
            let message = NewMessage { body, delay_ms: None, group: None, dedup_id: None, attributes };
            if !self.is_ensured(function) {
                self.ensure_queues(function)?;
            }
            self.queues.send(&function_queue(function), vec![message]).await?;
        }
        Ok(wanted.len())
    }
}

/// The event notification S3 sends Lambda (`{"Records": [...]}`), for one change.
pub fn s3_event(change: &ObjectChange, trigger: &str, region: &str) -> serde_json::Value {
    let mut object = json!({
        // S3 URL-encodes keys in notifications (spaces as `+`).
        "key": form_urlencoded::byte_serialize(change.key.as_bytes()).collect::<String>(),
        "sequencer": change.sequencer,
    });
    if let Some(size) = change.size {
        object["size"] = json!(size);
    }
    if let Some(etag) = &change.etag {
        object["eTag"] = json!(etag.trim_matches('"'));
    }
    json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": region,
            "eventTime": envelope::rfc3339(change.time_ms),
            "eventName": change.event,
            "userIdentity": { "principalId": "yun" },
            "requestParameters": { "sourceIPAddress": "127.0.0.1" },
            "responseElements": { "x-amz-request-id": change.sequencer, "x-amz-id-2": change.sequencer },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": trigger,
                "bucket": {
                    "name": change.bucket,
                    "ownerIdentity": { "principalId": "yun" },
                    "arn": format!("arn:aws:s3:::{}", change.bucket),
                },
                "object": object,
            },
        }]
    })
}

/// A storage trigger is checked for shape here; whether its bucket exists is the caller's.
pub(crate) fn is_storage(t: &Trigger) -> bool {
    matches!(t, Trigger::Storage { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_is_the_shape_lambda_functions_parse() {
        let change = ObjectChange {
            event: "ObjectCreated:Put".into(),
            bucket: "photos".into(),
            key: "in/my cat.jpg".into(),
            size: Some(1024),
            etag: Some("\"d41d8cd98f00b204e9800998ecf8427e\"".into()),
            sequencer: "0000000000000007".into(),
            time_ms: 1_700_000_000_000,
        };
        let v = s3_event(&change, "thumbs", "us-east-1");
        let parsed: aws_lambda_events::event::s3::S3Event = serde_json::from_value(v.clone()).unwrap();
        let r = &parsed.records[0];
        assert_eq!(r.event_name.as_deref(), Some("ObjectCreated:Put"));
        assert_eq!(r.s3.bucket.name.as_deref(), Some("photos"));
        assert_eq!(r.s3.object.key.as_deref(), Some("in%2Fmy+cat.jpg"));
        assert_eq!(r.s3.object.size, Some(1024));
        assert_eq!(r.s3.object.e_tag.as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
        assert_eq!(r.s3.configuration_id.as_deref(), Some("thumbs"));
        let removed = ObjectChange { event: "ObjectRemoved:Delete".into(), size: None, etag: None, ..change };
        let v = s3_event(&removed, "thumbs", "us-east-1");
        assert!(v["Records"][0]["s3"]["object"].get("size").is_none());
        let _: aws_lambda_events::event::s3::S3Event = serde_json::from_value(v).unwrap();
    }
}

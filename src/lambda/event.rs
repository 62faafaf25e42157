//! Amazon Connect and Genesys Cloud events → broker requests. Decoding errors
//! name the parameter or field, never its value.

use serde_json::Value;

use crate::broker::{BrokerError, CiphertextInput, Reason, ReencryptRequest};
use crate::esdk::EncryptionContext;
use crate::registry::model::{ConnectSpec, GenesysSpec};

/// A request (or why there is none) and the route to label its metrics with.
pub(super) type Decoded = (Result<ReencryptRequest, BrokerError>, Option<String>);

/// A `ContactFlowEvent`: its `Details.Parameters` (flat strings).
pub(super) fn connect(event: &Value, spec: &ConnectSpec, request_id: String) -> Decoded {
    let params = event.pointer("/Details/Parameters");
    let param = |name: &str| -> Result<Option<String>, BrokerError> {
        text(
            params.and_then(|p| p.get(name)),
            &format!("Details.Parameters.{name}"),
        )
    };
    let decoded = (|| {
        let route = param(&spec.route_parameter)?;
        let consumers = param(&spec.consumers_parameter)?
            .map(|s| split_list(&s))
            .unwrap_or_default();
        let route = if consumers.is_empty() {
            route.or_else(|| spec.default_route.clone())
        } else {
            route
        };
        let ciphertext = param(&spec.ciphertext_parameter)?.ok_or_else(|| {
            BrokerError::new(
                Reason::NoDataSupplied,
                format!(
                    "the event has no `{}` parameter (lambda.connect.ciphertext_parameter) in Details.Parameters",
                    spec.ciphertext_parameter
                ),
            )
        })?;
        Ok(ReencryptRequest {
            ciphertext: CiphertextInput::Base64(ciphertext),
            consumers,
            route,
            source_key_hint: param(&spec.key_id_parameter)?,
            expected_context: EncryptionContext::default(),
            all_or_nothing: false,
            request_id,
        })
    })();
    let route = label(&decoded, || {
        params
            .and_then(|p| p.get(&spec.route_parameter))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    (decoded, route)
}

/// A Genesys Cloud Lambda data action's payload.
pub(super) fn genesys(event: &Value, spec: &GenesysSpec, request_id: String) -> Decoded {
    let field = |name: &str| text(event.get(name), name);
    let decoded = (|| {
        let consumers = match event.get(&spec.consumers_field) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => split_list(s),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        malformed(format!(
                            "`{}` holds consumer ids: strings",
                            spec.consumers_field
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(malformed(format!(
                    "`{}` holds consumer ids: an array of strings or one comma-separated string",
                    spec.consumers_field
                )))
            }
        };
        let route = field(&spec.route_field)?;
        let route = if consumers.is_empty() {
            route.or_else(|| spec.default_route.clone())
        } else {
            route
        };
        let ciphertext = field(&spec.ciphertext_field)?.ok_or_else(|| {
            BrokerError::new(
                Reason::NoDataSupplied,
                format!(
                    "`{}` (lambda.genesys.ciphertext_field) is empty",
                    spec.ciphertext_field
                ),
            )
        })?;
        Ok(ReencryptRequest {
            ciphertext: CiphertextInput::Base64(ciphertext),
            consumers,
            route,
            source_key_hint: None,
            expected_context: EncryptionContext::default(),
            all_or_nothing: false,
            request_id,
        })
    })();
    let route = label(&decoded, || {
        event
            .get(&spec.route_field)
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    (decoded, route)
}

/// A string value, `None` when missing, null or empty; anything else is refused.
fn text(value: Option<&Value>, what: &str) -> Result<Option<String>, BrokerError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(malformed(format!("`{what}` must be a string"))),
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

fn malformed(message: String) -> BrokerError {
    BrokerError::new(Reason::MalformedRequest, message)
}

/// The route label of a request that could not be decoded (the broker labels
/// decoded ones by their route).
fn label(
    decoded: &Result<ReencryptRequest, BrokerError>,
    given: impl FnOnce() -> Option<String>,
) -> Option<String> {
    match decoded {
        Ok(r) => r.route.clone(),
        Err(_) => given(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_event(params: Value) -> Value {
        serde_json::json!({
            "Details": {
                "ContactData": {"ContactId": "c-1", "CustomerEndpoint": null},
                "Parameters": params
            },
            "Name": "ContactFlowEvent"
        })
    }

    #[test]
    fn connect_parameters_become_a_request() {
        let spec = ConnectSpec {
            default_route: Some("card-capture".into()),
            ..ConnectSpec::default()
        };
        let (r, route) = connect(
            &connect_event(serde_json::json!({"my-secret-string": " AQID ", "key-id": "k-1"})),
            &spec,
            "rid".into(),
        );
        let r = r.unwrap();
        assert!(matches!(&r.ciphertext, CiphertextInput::Base64(s) if s == "AQID"));
        assert_eq!(r.source_key_hint.as_deref(), Some("k-1"));
        assert_eq!(r.route.as_deref(), Some("card-capture"));
        assert_eq!(route.as_deref(), Some("card-capture"));
        assert_eq!(r.request_id, "rid");

        // Consumers given: the default route is not added to them.
        let (r, _) = connect(
            &connect_event(serde_json::json!({"my-secret-string": "AQID", "consumers": "a, b,,"})),
            &spec,
            "rid".into(),
        );
        let r = r.unwrap();
        assert_eq!(r.consumers, ["a", "b"]);
        assert_eq!(r.route, None);
    }

    #[test]
    fn connect_refusals_name_the_parameter_not_its_value() {
        let spec = ConnectSpec::default();
        let (r, _) = connect(&connect_event(serde_json::json!({})), &spec, "r".into());
        let e = r.unwrap_err();
        assert_eq!(e.reason, Reason::NoDataSupplied);
        assert!(e.message.contains("my-secret-string"), "{}", e.message);
        let (r, _) = connect(
            &connect_event(serde_json::json!({"my-secret-string": {"nested": "SECRETVALUE"}})),
            &spec,
            "r".into(),
        );
        let e = r.unwrap_err();
        assert_eq!(e.reason, Reason::MalformedRequest);
        assert!(!e.message.contains("SECRETVALUE"));
        // No Parameters at all.
        let (r, _) = connect(
            &serde_json::json!({"Name": "ContactFlowEvent", "Details": {}}),
            &spec,
            "r".into(),
        );
        assert_eq!(r.unwrap_err().reason, Reason::NoDataSupplied);
    }

    #[test]
    fn genesys_fields_become_a_request() {
        let spec = GenesysSpec {
            default_route: Some("d".into()),
            ..GenesysSpec::default()
        };
        let (r, _) = genesys(
            &serde_json::json!({"encryptedData": "AQID", "conversationId": "x", "extra": 1}),
            &spec,
            "rid".into(),
        );
        assert_eq!(r.unwrap().route.as_deref(), Some("d"));
        let (r, _) = genesys(
            &serde_json::json!({"encryptedData": "AQID", "consumers": ["a", "b"]}),
            &spec,
            "rid".into(),
        );
        let r = r.unwrap();
        assert_eq!((r.consumers.len(), r.route), (2, None));
        let (r, _) = genesys(
            &serde_json::json!({"encryptedData": "AQID", "consumers": 7}),
            &spec,
            "rid".into(),
        );
        assert_eq!(r.unwrap_err().reason, Reason::MalformedRequest);
        let (r, _) = genesys(&serde_json::json!({"encryptedData": ""}), &spec, "r".into());
        assert_eq!(r.unwrap_err().reason, Reason::NoDataSupplied);
    }
}

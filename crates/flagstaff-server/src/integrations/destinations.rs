//! Where change-history entries go: every enabled webhook and integration subscription with
//! its filter. Kept in memory so `Services::commit` can write one delivery per matching
//! destination inside the change's transaction without extra reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use flagstaff_manifest::{Integration, LiveCatalogue};
#[cfg(test)]
use flagstaff_policy::Resource;
use flagstaff_policy::{Authorizer, CompiledPolicy};
use flagstaff_store::{EntityKind, NewDelivery, Store};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::{SubscriptionDoc, WebhookDoc};
use crate::services::Access;

/// A destination's id in the delivery queue: `webhook/<id>` or
/// `integration/<integrationKey>/<id>`.
pub fn webhook_destination(id: &str) -> String {
    format!("webhook/{id}")
}

pub fn integration_destination(integration_key: &str, id: &str) -> String {
    format!("integration/{integration_key}/{id}")
}

#[derive(Debug, Clone)]
pub struct Route {
    pub destination: String,
    pub on: bool,
    /// `None`: every change (a webhook or subscription without statements, and no default
    /// policy in the manifest).
    pub filter: Option<Arc<CompiledPolicy>>,
}

impl Route {
    /// Sent if some allow statement matches one of the change's (action, resource) pairs and
    /// no deny statement matches it (LaunchDarkly policy semantics).
    pub fn matches(&self, accesses: &[Access]) -> bool {
        let Some(filter) = &self.filter else {
            return true;
        };
        accesses
            .iter()
            .any(|a| filter.decide(&a.action, &a.resource).is_allowed())
    }
}

/// Compiles a stored policy (`statements`); `None` when absent. A stored policy that no
/// longer compiles matches nothing rather than everything.
pub fn compile_filter(statements: Option<&Value>) -> Option<Arc<CompiledPolicy>> {
    let mut statements = statements?.clone();
    // Manifest policies may leave `effect` out; the framework's schema defaults it to allow.
    if let Value::Array(items) = &mut statements {
        for item in items {
            if let Value::Object(statement) = item {
                statement
                    .entry("effect")
                    .or_insert_with(|| Value::from("allow"));
            }
        }
    }
    let compiled = flagstaff_policy::parse_policy(&statements)
        .ok()
        .and_then(|parsed| CompiledPolicy::new(&parsed).ok())
        .unwrap_or_else(|| CompiledPolicy::new(&[]).expect("the empty policy compiles"));
    Some(Arc::new(compiled))
}

/// What sending to an enabled destination needs, secrets opened. No `Debug`: it holds them.
pub enum Opened {
    Webhook {
        url: String,
        /// The signing secret, when the webhook signs.
        secret: Option<String>,
    },
    Subscription {
        integration: Arc<Integration>,
        /// Form values with secret ones decrypted.
        form_values: Map<String, Value>,
    },
}

/// Opened destinations, dropped whenever the routes change (an edit, delete or disable on
/// this node, the periodic reload for the others). `generation` counts those drops, so a
/// document read before one is not kept after it.
#[derive(Default)]
struct OpenedCache {
    generation: u64,
    opened: HashMap<String, Arc<Opened>>,
}

#[derive(Default)]
pub struct Destinations {
    routes: RwLock<Arc<Vec<Route>>>,
    loaded: OnceCell<()>,
    /// Consecutive failed attempts per destination (reset by a success).
    failures: RwLock<HashMap<String, Arc<AtomicU32>>>,
    opened: Mutex<OpenedCache>,
}

impl Destinations {
    /// Loads the routes the first time they are needed.
    pub async fn ensure_loaded(&self, store: &dyn Store, catalogue: &LiveCatalogue) {
        self.loaded
            .get_or_init(|| async {
                self.reload(store, catalogue).await;
            })
            .await;
    }

    /// Rebuilds every route from the stored webhooks and subscriptions. A subscription
    /// without statements uses its manifest's `defaultPolicy`.
    pub async fn reload(&self, store: &dyn Store, catalogue: &LiveCatalogue) {
        let mut routes = Vec::new();
        match store.list(EntityKind::Webhook, "").await {
            Ok(stored) => {
                for entity in stored {
                    if let Ok(doc) = serde_json::from_str::<WebhookDoc>(&entity.doc) {
                        routes.push(Route {
                            destination: webhook_destination(&doc.id),
                            on: doc.on,
                            filter: compile_filter(doc.statements.as_ref()),
                        });
                    }
                }
            }
            Err(e) => tracing::error!("cannot load webhooks for delivery routing: {e}"),
        }
        let current = catalogue.current();
        for integration in current.iter() {
            let stored = match store
                .list(EntityKind::IntegrationConfig, &integration.key)
                .await
            {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::error!("cannot load integration configurations: {e}");
                    continue;
                }
            };
            let hook = integration
                .manifest
                .capabilities
                .as_ref()
                .and_then(|c| c.audit_log_events_hook.as_ref());
            let Some(hook) = hook else { continue };
            let default_policy = hook
                .default_policy
                .as_ref()
                .and_then(|p| serde_json::to_value(p).ok());
            for entity in stored {
                if let Ok(doc) = serde_json::from_str::<SubscriptionDoc>(&entity.doc) {
                    let statements = doc.statements.as_ref().or(default_policy.as_ref());
                    routes.push(Route {
                        destination: integration_destination(&doc.integration_key, &doc.id),
                        on: doc.on,
                        filter: compile_filter(statements),
                    });
                }
            }
        }
        self.replace(routes);
    }

    pub fn replace(&self, routes: Vec<Route>) {
        *self
            .routes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(routes);
        self.forget_opened();
    }

    /// The opened destination if cached, and the generation to keep a fresh one under.
    pub fn opened(&self, destination: &str) -> (u64, Option<Arc<Opened>>) {
        let cache = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        (cache.generation, cache.opened.get(destination).cloned())
    }

    /// Keeps an opened destination, unless the destinations changed since `generation`.
    pub fn keep_opened(&self, generation: u64, destination: &str, opened: Arc<Opened>) {
        let mut cache = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if cache.generation == generation {
            cache.opened.insert(destination.to_string(), opened);
        }
    }

    fn forget_opened(&self) {
        let mut cache = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        cache.generation += 1;
        cache.opened.clear();
    }

    /// Stops routing to a destination at once, before the change that turns it off commits,
    /// so no change that commits after it is visible as off can still be queued for it.
    pub fn turn_off(&self, destination: &str) {
        let mut guard = self
            .routes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let routes: Vec<Route> = guard
            .iter()
            .cloned()
            .map(|mut route| {
                if route.destination == destination {
                    route.on = false;
                }
                route
            })
            .collect();
        *guard = Arc::new(routes);
        drop(guard);
        self.forget_opened();
    }

    /// One delivery per enabled destination whose filter matches the change.
    pub fn route(&self, audit_id: &str, accesses: &[Access]) -> Vec<NewDelivery> {
        let routes = self
            .routes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        routes
            .iter()
            .filter(|r| r.on && r.matches(accesses))
            .map(|r| NewDelivery {
                // Time-ordered, so new rows land at the end of the `id` indexes (deliveries
                // and attempts) rather than on random pages of them.
                id: uuid::Uuid::now_v7().to_string(),
                destination: r.destination.clone(),
                audit_id: audit_id.to_string(),
                lease_until: 0,
            })
            .collect()
    }

    fn counter(&self, destination: &str) -> Arc<AtomicU32> {
        if let Some(counter) = self
            .failures
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(destination)
        {
            return counter.clone();
        }
        self.failures
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(destination.to_string())
            .or_default()
            .clone()
    }

    /// Records an attempt's result; returns the consecutive-failure count after it.
    pub fn record(&self, destination: &str, success: bool) -> u32 {
        let counter = self.counter(destination);
        if success {
            counter.store(0, Ordering::Relaxed);
            0
        } else {
            counter.fetch_add(1, Ordering::Relaxed) + 1
        }
    }

    pub fn reset_failures(&self, destination: &str) {
        self.counter(destination).store(0, Ordering::Relaxed);
    }
}

/// `resource` for an access in a test.
#[cfg(test)]
fn access(action: &str, resource: Resource) -> Access {
    Access {
        action: action.to_string(),
        resource,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(json: serde_json::Value) -> Option<Arc<CompiledPolicy>> {
        let statements = flagstaff_policy::parse_policy(&json).unwrap();
        Some(Arc::new(CompiledPolicy::new(&statements).unwrap()))
    }

    #[test]
    fn filters_by_environment_and_action() {
        let route = Route {
            destination: "webhook/w".into(),
            on: true,
            filter: filter(serde_json::json!([
                {"effect": "allow", "resources": ["proj/*:env/production:flag/*"], "actions": ["updateOn"]}
            ])),
        };
        let prod = Resource::project("p", &[])
            .env("production", &[], true)
            .flag("f", &[]);
        let test = Resource::project("p", &[])
            .env("test", &[], false)
            .flag("f", &[]);
        assert!(route.matches(&[access("updateOn", prod.clone())]));
        assert!(!route.matches(&[access("updateOn", test)]));
        assert!(!route.matches(&[access("updateName", prod)]));
    }

    #[test]
    fn disabled_routes_get_nothing() {
        let destinations = Destinations::default();
        destinations.replace(vec![
            Route {
                destination: "webhook/a".into(),
                on: true,
                filter: None,
            },
            Route {
                destination: "webhook/b".into(),
                on: false,
                filter: None,
            },
        ]);
        let routed = destinations.route(
            "audit",
            &[access("createProject", Resource::project("p", &[]))],
        );
        assert_eq!(routed.len(), 1);
        assert_eq!(routed[0].destination, "webhook/a");
    }
}

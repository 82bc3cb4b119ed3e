//! Named providers and routes per country: the one `SmsProvider` the server holds.
//!
//! A route names countries (ISO codes, or `*` for all) and providers in order; the first route
//! that names a number's country takes it. Within a route, the first provider that supports the
//! channel sends; the next one sends only when it is *unavailable* (down, timing out, breaker
//! open, refusing our credentials). A number a provider rejects (invalid, undeliverable, region,
//! rate limit) is rejected: trying it elsewhere would only spend money and help pumping.
//!
//! **Timeouts.** A provider that timed out or dropped the connection after our request was
//! written may in fact have sent it; we cannot know. The provider itself never repeats such a
//! request (see `caller`), but the router does fail over on it: a provider that swallows
//! requests must not swallow every code, and the issue counts "timing out" as unavailable. The
//! next provider sends the *same* code (our code, checked locally), so in the worst case the user
//! gets that one code twice and exactly one code is valid. Connect errors, 503s and an open
//! breaker sent nothing for certain; they fail over with no such doubt. (With a provider that
//! makes its own code, Twilio Verify, the worst case is two different codes, of which only the
//! one the sender reported is checked.)
//!
//! **Channel fallback.** A route may name `fallback_channel` (usually `sms`): a send on another
//! channel (WhatsApp) that its providers report undeliverable, that none of them can send, or
//! that every one of them is unavailable for, goes out at once on the fallback channel with the
//! same code. The receipt says which channel and which provider were used.
//!
//! **References.** Each receipt's reference is tagged with the sender's name (`vonage:abc`), so
//! checks and cancels reach the provider that holds the verification, and approvals can be
//! counted per provider (`sender_of`). Untagged references (from before routes) belong to the
//! first provider of the first route; `N:` (the old failover's position) to the N-th provider of
//! the first route.
//!
//! `config`: the configuration and its checks; `build`: the providers and the router made from it.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use otpgate_core::provider::{ProviderCheck, SendReceipt};
use otpgate_core::{Channel, Code, OutgoingCode, PhoneNumber, ProviderError, SmsProvider};
use tracing::warn;

use crate::config::ConfigError;

mod build;
mod config;

pub use build::{Built, build, shared_client};
pub use config::{EffectiveRoute, ProviderConfig, RouteConfig, check_name, check_routes, intern};

/// Which countries a route takes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Countries {
    All,
    Some(BTreeSet<String>),
}

impl Countries {
    fn contains(&self, region: &str) -> bool {
        match self {
            Countries::All => true,
            Countries::Some(set) => set.contains(region),
        }
    }
}

struct Route {
    countries: Countries,
    /// Indexes into `Router::providers`, in order.
    providers: Vec<usize>,
    fallback: Option<Channel>,
}

struct Named {
    name: &'static str,
    provider: Arc<dyn SmsProvider>,
}

/// What a route could do with one channel.
enum Outcome {
    Sent(SendReceipt),
    Failed(ProviderError),
    /// No provider of the route supports the channel.
    NoProvider,
}

pub struct Router {
    name: &'static str,
    providers: Vec<Named>,
    routes: Vec<Route>,
}

impl Router {
    /// `providers` in any order (their order is kept for `readiness`); `routes` as configured.
    pub fn new(
        providers: Vec<(&'static str, Arc<dyn SmsProvider>)>,
        routes: &[RouteConfig],
    ) -> Result<Self, ConfigError> {
        let names: Vec<&str> = providers.iter().map(|(n, _)| *n).collect();
        for n in &names {
            check_name(n)?;
        }
        if names.iter().collect::<HashSet<_>>().len() != names.len() {
            return Err(ConfigError("providers: a name is used twice".into()));
        }
        check_routes(&names, routes)?;
        let index = |n: &str| names.iter().position(|m| *m == n).expect("checked above");
        let built: Vec<Route> = routes
            .iter()
            .map(|r| Route {
                countries: if r.countries.iter().any(|c| c == "*") {
                    Countries::All
                } else {
                    Countries::Some(r.countries.iter().cloned().collect())
                },
                providers: r.providers.iter().map(|p| index(p)).collect(),
                fallback: r.fallback_channel.as_deref().and_then(|c| c.parse().ok()),
            })
            .collect();
        for (i, r) in built.iter().enumerate() {
            if let Some(fb) = r.fallback
                && !r.providers.iter().any(|p| providers[*p].1.supports(fb))
            {
                return Err(ConfigError(format!(
                    "routing[{i}]: fallback_channel {} is not supported by any of its providers",
                    fb.as_str()
                )));
            }
        }
        let name = if providers.len() == 1 { providers[0].0 } else { "router" };
        Ok(Router {
            name,
            providers: providers.into_iter().map(|(name, provider)| Named { name, provider }).collect(),
            routes: built,
        })
    }

    fn route_for(&self, to: &PhoneNumber) -> Option<&Route> {
        let region = to.region().unwrap_or("ZZ");
        self.routes.iter().find(|r| r.countries.contains(region))
    }

    fn route_supports(&self, route: &Route, channel: Channel) -> bool {
        route.providers.iter().any(|p| self.providers[*p].provider.supports(channel))
    }

    /// The providers of `route` that support `channel`, in order, until one sends or refuses
    /// the number.
    async fn send_on(&self, route: &Route, msg: &OutgoingCode) -> Outcome {
        let mut last = None;
        for p in route.providers.iter().map(|p| &self.providers[*p]).filter(|p| p.provider.supports(msg.channel)) {
            match p.provider.send(msg).await {
                Ok(mut receipt) => {
                    // Tagged even when empty: the stored reference then names who sent.
                    receipt.provider_ref = match receipt.provider_ref {
                        Some(r) => Some(format!("{}:{r}", p.name)),
                        None if receipt.provider_checks => None,
                        None => Some(format!("{}:", p.name)),
                    };
                    receipt.provider = Some(receipt.provider.unwrap_or(p.name));
                    return Outcome::Sent(receipt);
                }
                Err(err @ ProviderError::Unavailable { .. }) => {
                    metrics::counter!("otpgate_provider_failovers_total", "provider" => p.name).increment(1);
                    warn!(event = "sms.failover", provider = p.name, channel = msg.channel.as_str(), phone = %msg.to.masked(), "provider unavailable, trying the next");
                    last = Some(err);
                }
                Err(err) => return Outcome::Failed(err),
            }
        }
        match last {
            Some(err) => Outcome::Failed(err),
            None => Outcome::NoProvider,
        }
    }

    /// The provider a (tagged, untagged or old positional) reference belongs to, and the
    /// provider's own reference.
    fn resolve<'a>(&self, provider_ref: &'a str) -> Option<(&Named, &'a str)> {
        let first_route = self.routes.first()?;
        match provider_ref.split_once(':') {
            Some((tag, inner)) if self.providers.iter().any(|p| p.name == tag) => {
                Some((self.providers.iter().find(|p| p.name == tag)?, inner))
            }
            Some((tag, inner)) if !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_digit()) => {
                let position: usize = tag.parse().ok()?;
                Some((&self.providers[*first_route.providers.get(position)?], inner))
            }
            // A tag we do not know: the configuration changed since the send.
            Some(_) => None,
            None => Some((&self.providers[*first_route.providers.first()?], provider_ref)),
        }
    }

    /// Each provider's readiness, by name, for `/readyz` detail.
    pub async fn provider_readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        let mut out = Vec::with_capacity(self.providers.len());
        for p in &self.providers {
            out.push((p.name, p.provider.readiness().await));
        }
        out
    }

    /// The provider named `name`, for `otpgate sms test --provider NAME`.
    pub fn provider(&self, name: &str) -> Option<Arc<dyn SmsProvider>> {
        self.providers.iter().find(|p| p.name == name).map(|p| p.provider.clone())
    }

    /// The provider names, in configuration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.providers.iter().map(|p| p.name).collect()
    }
}

/// The provider name in a reference stored by the core (`remote:` prefixed or not), for
/// counting approvals per provider. `None` for references from before routes.
pub fn sender_of(stored_ref: &str) -> Option<&str> {
    let r = stored_ref.strip_prefix(otpgate_core::service::REMOTE_PREFIX).unwrap_or(stored_ref);
    let (tag, _) = r.split_once(':')?;
    check_name(tag).ok().map(|()| tag)
}

#[async_trait]
impl SmsProvider for Router {
    fn name(&self) -> &'static str {
        self.name
    }

    fn supports(&self, channel: Channel) -> bool {
        self.routes
            .iter()
            .any(|r| self.route_supports(r, channel) || r.fallback.is_some_and(|fb| self.route_supports(r, fb)))
    }

    /// Per the number's route. A country no route names answers `true` here and
    /// `unsupported_region` on send, so the caller hears about the region, not the channel.
    fn supports_for(&self, channel: Channel, to: &PhoneNumber) -> bool {
        match self.route_for(to) {
            Some(r) => self.route_supports(r, channel) || r.fallback.is_some_and(|fb| self.route_supports(r, fb)),
            None => true,
        }
    }

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        let Some(route) = self.route_for(&msg.to) else {
            warn!(event = "sms.route", outcome = "no_route", phone = %msg.to.masked(), "no route for this country");
            return Err(ProviderError::UnsupportedRegion);
        };
        let first = self.send_on(route, msg).await;
        let fallback = route.fallback.filter(|fb| *fb != msg.channel);
        let first_err = match (first, fallback) {
            (Outcome::Sent(receipt), _) => return Ok(receipt),
            (Outcome::Failed(err @ (ProviderError::Undeliverable | ProviderError::Unavailable { .. })), Some(_)) => err,
            (Outcome::NoProvider, Some(_)) => ProviderError::Unavailable { retry_after: None },
            (Outcome::Failed(err), None) => return Err(err),
            (Outcome::Failed(err), Some(_)) => return Err(err),
            (Outcome::NoProvider, None) => return Err(ProviderError::Unavailable { retry_after: None }),
        };
        let fb = fallback.expect("matched above");
        warn!(event = "sms.channel_fallback", from = msg.channel.as_str(), to = fb.as_str(), error = %first_err, phone = %msg.to.masked(), "sending the same code on the fallback channel");
        metrics::counter!("otpgate_channel_fallbacks_total", "from" => msg.channel.as_str(), "to" => fb.as_str())
            .increment(1);
        // The same code, the same verification: only the channel changes.
        let again = OutgoingCode { channel: fb, ..msg.clone() };
        match self.send_on(route, &again).await {
            Outcome::Sent(mut receipt) => {
                receipt.channel = Some(fb);
                Ok(receipt)
            }
            Outcome::Failed(err) => Err(err),
            Outcome::NoProvider => Err(first_err),
        }
    }

    async fn check(
        &self,
        provider_ref: &str,
        phone: &PhoneNumber,
        code: &Code,
    ) -> Result<ProviderCheck, ProviderError> {
        match self.resolve(provider_ref) {
            Some((p, inner)) => p.provider.check(inner, phone, code).await,
            // The configuration changed since the send: nobody holds it any more.
            None => Ok(ProviderCheck::NotFound),
        }
    }

    async fn cancel(&self, provider_ref: &str) -> Result<(), ProviderError> {
        match self.resolve(provider_ref) {
            Some((p, inner)) => p.provider.cancel(inner).await,
            None => Ok(()),
        }
    }

    /// Not ready when some route has no ready provider (its countries cannot be served); the
    /// reason names every provider that is not ready and why.
    async fn readiness(&self) -> Result<(), String> {
        let states = self.provider_readiness().await;
        let ready = |i: usize| states[i].1.is_ok();
        let stranded = self.routes.iter().any(|r| !r.providers.iter().any(|p| ready(*p)));
        if !stranded {
            return Ok(());
        }
        let reasons: Vec<String> = states
            .iter()
            .filter_map(|(name, s)| {
                // Providers built here prefix their own name already ("vonage: …").
                s.as_ref().err().map(|why| {
                    if why.starts_with(&format!("{name}: ")) { why.clone() } else { format!("{name}: {why}") }
                })
            })
            .collect();
        Err(reasons.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use otpgate_core::{Clock, ManualClock};

    use super::*;

    /// A provider that answers from a script per channel and records what it was asked.
    struct Scripted {
        channels: Vec<Channel>,
        answer: Box<dyn Fn(Channel) -> Result<Option<&'static str>, ProviderError> + Send + Sync>,
        calls: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(
            channels: &[Channel],
            answer: impl Fn(Channel) -> Result<Option<&'static str>, ProviderError> + Send + Sync + 'static,
        ) -> Arc<Self> {
            Arc::new(Scripted { channels: channels.to_vec(), answer: Box::new(answer), calls: Mutex::new(Vec::new()) })
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl SmsProvider for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn supports(&self, c: Channel) -> bool {
            self.channels.contains(&c)
        }
        async fn send(&self, m: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
            self.calls.lock().unwrap().push(format!("send {} {}", m.channel.as_str(), m.code.expose()));
            (self.answer)(m.channel)
                .map(|r| SendReceipt { provider_ref: r.map(str::to_owned), ..SendReceipt::default() })
        }
        async fn check(&self, r: &str, _: &PhoneNumber, _: &Code) -> Result<ProviderCheck, ProviderError> {
            self.calls.lock().unwrap().push(format!("check {r}"));
            Ok(ProviderCheck::Approved)
        }
    }

    fn msg(to: &str, channel: Channel) -> OutgoingCode {
        OutgoingCode {
            to: PhoneNumber::parse(to, None).unwrap(),
            code: Code::parse("123456", 6).unwrap(),
            channel,
            locale: None,
            text: "123456 is your code".into(),
            verification_id: None,
            expires_at: None,
        }
    }

    const IN: &str = "+919876543210";
    const US: &str = "+14155550100";
    const DOWN: ProviderError = ProviderError::Unavailable { retry_after: None };

    fn route(countries: &[&str], providers: &[&str], fallback: Option<&str>) -> RouteConfig {
        RouteConfig {
            countries: countries.iter().map(|c| c.to_string()).collect(),
            providers: providers.iter().map(|p| p.to_string()).collect(),
            fallback_channel: fallback.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn first_matching_route_wins_and_unavailable_fails_over_in_order() {
        let a = Scripted::new(&[Channel::Sms], |_| Err(DOWN));
        let b = Scripted::new(&[Channel::Sms], |_| Ok(Some("ref-b")));
        let c = Scripted::new(&[Channel::Sms], |_| Ok(Some("ref-c")));
        let r = Router::new(
            vec![("a", a.clone()), ("b", b.clone()), ("c", c.clone())],
            &[route(&["IN", "BD"], &["a", "b"], None), route(&["*"], &["c", "a"], None)],
        )
        .unwrap();
        let receipt = r.send(&msg(IN, Channel::Sms)).await.unwrap();
        assert_eq!((receipt.provider_ref.as_deref(), receipt.provider), (Some("b:ref-b"), Some("b")));
        assert_eq!(a.calls().len(), 1);
        let receipt = r.send(&msg(US, Channel::Sms)).await.unwrap();
        assert_eq!(receipt.provider, Some("c"));
        assert_eq!(a.calls().len(), 1, "the * route's first provider was up");
        // Checks reach the sender, by its tag.
        let m = msg(IN, Channel::Sms);
        assert_eq!(r.check("b:ref-b", &m.to, &m.code).await.unwrap(), ProviderCheck::Approved);
        assert_eq!(b.calls().last().unwrap(), "check ref-b");
        assert_eq!(r.check("gone:ref", &m.to, &m.code).await.unwrap(), ProviderCheck::NotFound);
        // Old references: untagged -> first provider of the first route; `N:` -> its N-th.
        r.check("VE123", &m.to, &m.code).await.unwrap();
        assert_eq!(a.calls().last().unwrap(), "check VE123");
        r.check("1:VE9", &m.to, &m.code).await.unwrap();
        assert_eq!(b.calls().last().unwrap(), "check VE9");
        assert_eq!(sender_of("remote:b:VE9"), Some("b"));
        assert_eq!(sender_of("b:"), Some("b"));
        assert_eq!(sender_of("VE9"), None);
    }

    #[tokio::test]
    async fn a_rejected_number_is_not_tried_elsewhere() {
        for rejection in [
            ProviderError::InvalidNumber,
            ProviderError::Undeliverable,
            ProviderError::UnsupportedRegion,
            ProviderError::RateLimited { retry_after: None },
        ] {
            let err = rejection.clone();
            let a = Scripted::new(&[Channel::Sms], move |_| Err(err.clone()));
            let b = Scripted::new(&[Channel::Sms], |_| Ok(None));
            let r = Router::new(vec![("a", a), ("b", b.clone())], &[route(&["*"], &["a", "b"], None)]).unwrap();
            assert_eq!(r.send(&msg(US, Channel::Sms)).await.unwrap_err(), rejection);
            assert!(b.calls().is_empty());
        }
    }

    #[tokio::test]
    async fn undeliverable_whatsapp_goes_out_by_sms_with_the_same_code() {
        let wa = Scripted::new(&[Channel::Sms, Channel::Whatsapp], |c| match c {
            Channel::Whatsapp => Err(ProviderError::Undeliverable),
            _ => Ok(Some("sm")),
        });
        let r = Router::new(vec![("tw", wa.clone())], &[route(&["*"], &["tw"], Some("sms"))]).unwrap();
        let receipt = r.send(&msg(US, Channel::Whatsapp)).await.unwrap();
        assert_eq!(receipt.channel, Some(Channel::Sms));
        assert_eq!(wa.calls(), ["send whatsapp 123456", "send sms 123456"]);
        // Without a fallback the refusal stands.
        let wa2 = Scripted::new(&[Channel::Sms, Channel::Whatsapp], |c| match c {
            Channel::Whatsapp => Err(ProviderError::Undeliverable),
            _ => Ok(Some("sm")),
        });
        let r = Router::new(vec![("tw", wa2.clone())], &[route(&["*"], &["tw"], None)]).unwrap();
        assert_eq!(r.send(&msg(US, Channel::Whatsapp)).await.unwrap_err(), ProviderError::Undeliverable);
        assert_eq!(wa2.calls().len(), 1);
    }

    #[tokio::test]
    async fn channel_support_is_answered_per_route() {
        let sms = Scripted::new(&[Channel::Sms], |_| Ok(None));
        let wa = Scripted::new(&[Channel::Sms, Channel::Whatsapp], |_| Ok(None));
        let r = Router::new(
            vec![("sms", sms.clone()), ("wa", wa)],
            &[route(&["IN"], &["sms"], None), route(&["BD"], &["sms"], Some("sms")), route(&["*"], &["wa"], None)],
        )
        .unwrap();
        let to = |n: &str| PhoneNumber::parse(n, None).unwrap();
        assert!(r.supports(Channel::Whatsapp));
        assert!(r.supports(Channel::Call), "Bangladesh's route falls back to SMS for any channel");
        assert!(!r.supports_for(Channel::Call, &to(US)), "nobody calls, and the * route has no fallback");
        assert!(!r.supports_for(Channel::Whatsapp, &to(IN)), "India's route cannot do WhatsApp");
        assert!(r.supports_for(Channel::Whatsapp, &to("+8801712345678")), "Bangladesh falls back to SMS");
        assert!(r.supports_for(Channel::Whatsapp, &to(US)));
        // No provider for WhatsApp on the route, with a fallback: straight to SMS.
        let receipt = r.send(&msg("+8801712345678", Channel::Whatsapp)).await.unwrap();
        assert_eq!((receipt.channel, receipt.provider), (Some(Channel::Sms), Some("sms")));
        assert_eq!(sms.calls(), ["send sms 123456"]);
    }

    /// Ready or not, as told; sends always fail.
    struct Health(Result<(), String>);

    #[async_trait]
    impl SmsProvider for Health {
        fn name(&self) -> &'static str {
            "health"
        }
        fn supports(&self, _: Channel) -> bool {
            true
        }
        async fn send(&self, _: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
            Err(DOWN)
        }
        async fn readiness(&self) -> Result<(), String> {
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn readiness_fails_only_when_a_route_has_no_ready_provider_and_says_why() {
        let up = || Arc::new(Health(Ok(()))) as Arc<dyn SmsProvider>;
        let down = |why: &str| Arc::new(Health(Err(why.to_owned()))) as Arc<dyn SmsProvider>;
        let routes = [route(&["IN"], &["a", "b"], None), route(&["*"], &["b"], None)];
        let r = Router::new(vec![("a", down("a: out of credit (status 9)")), ("b", up())], &routes).unwrap();
        assert!(r.readiness().await.is_ok(), "India still has b");
        let states = r.provider_readiness().await;
        assert_eq!(states[0], ("a", Err("a: out of credit (status 9)".to_owned())));
        let r = Router::new(vec![("a", up()), ("b", down("breaker open"))], &routes).unwrap();
        assert_eq!(r.readiness().await.unwrap_err(), "b: breaker open", "the * route has nobody");
    }

    #[test]
    fn routes_are_checked() {
        let names = ["a", "b"];
        let bad = |routes: &[RouteConfig]| check_routes(&names, routes).unwrap_err().to_string();
        assert!(bad(&[route(&["IN"], &["x"], None)]).contains("no provider named \"x\""));
        assert!(bad(&[route(&["IN"], &["a", "a"], None)]).contains("twice"));
        assert!(bad(&[route(&["in"], &["a"], None)]).contains("ISO"));
        assert!(bad(&[route(&["XX"], &["a"], None)]).contains("ISO"));
        assert!(bad(&[route(&["*"], &["a"], None), route(&["IN"], &["b"], None)]).contains("never be used"));
        assert!(bad(&[route(&["IN"], &["a"], None), route(&["IN"], &["b"], None)]).contains("already routed"));
        assert!(bad(&[route(&["IN"], &["a"], Some("fax"))]).contains("fax"));
        assert!(bad(&[]).contains("at least one"));
        let ok = check_routes(&names, &[route(&["IN", "BD"], &["b", "a"], Some("sms")), route(&["*"], &["a"], None)])
            .unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!((ok[1].country.as_str(), ok[1].providers.clone()), ("BD", vec!["b".to_owned(), "a".to_owned()]));
        assert_eq!(ok[2].country, "*");
    }

    #[test]
    fn provider_tables_parse_by_kind_and_refuse_unknown_keys() {
        let parse = |v: serde_json::Value| serde_json::from_value::<ProviderConfig>(v);
        let v = parse(serde_json::json!({
            "kind": "vonage", "api_key": "abcd1234", "api_secret": "s3cr3t-value", "from": "Acme"
        }))
        .unwrap();
        assert_eq!(v.kind(), "vonage");
        v.validate().unwrap();
        assert!(parse(serde_json::json!({ "kind": "vonage", "api_key": "k", "from": "A", "apisecret": "x" })).is_err());
        assert!(parse(serde_json::json!({ "kind": "carrier-pigeon" })).is_err());
        assert_eq!(parse(serde_json::json!({ "kind": "demo" })).unwrap().kind(), "demo");
        assert!(parse(serde_json::json!({ "kind": "demo", "from": "Acme" })).is_err(), "demo has no keys");
        assert!(parse(serde_json::json!({ "api_key": "k", "from": "A" })).is_err(), "the kind is required");
        let w = parse(serde_json::json!({
            "kind": "webhook", "url": "https://gw.example.com/otp", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        }))
        .unwrap();
        w.validate().unwrap();
        // Secrets never show in what `config check` prints.
        let shown = serde_json::to_string(&w).unwrap();
        assert!(!shown.contains("MfKQ9r8G") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn names_are_plain_and_interned_once() {
        assert!(check_name("twilio-eu_2").is_ok());
        for bad in ["", "Twilio", "a b", "12", "x".repeat(33).as_str(), "a:b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(std::ptr::eq(intern("vonage-in"), intern("vonage-in")));
    }

    #[tokio::test]
    async fn build_makes_every_provider_and_the_demo_inbox() {
        let providers: BTreeMap<String, ProviderConfig> = serde_json::from_value(serde_json::json!({
            "dev": { "kind": "demo" },
            "gw": { "kind": "webhook", "url": "http://127.0.0.1:9/otp", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }
        }))
        .unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::starting_now());
        let built = build(&providers, &[route(&["*"], &["dev", "gw"], None)], clock.clone()).unwrap();
        assert!(built.inbox.is_some());
        assert_eq!(built.router.names(), ["dev", "gw"]);
        let receipt = built.router.send(&msg(US, Channel::Sms)).await.unwrap();
        assert_eq!(receipt.provider, Some("dev"));
        assert_eq!(built.inbox.unwrap().messages(None).len(), 1);
        let e = build(&providers, &[route(&["*"], &["nope"], None)], clock).err().unwrap().to_string();
        assert!(e.contains("nope"), "{e}");
    }
}

//! The rate limits a send and a check take, and their keys. Keys of personal values are keyed
//! HMACs (see `privacy`).

use std::net::IpAddr;

use super::{SendRequest, VerificationService};
use crate::client::ClientKey;
use crate::limits::{LimitRule, LimitScope, Rate};
use crate::{PhoneNumber, privacy};

impl VerificationService {
    /// Limits that apply to a send, all checked (and taken, all or nothing) before any store
    /// write or provider call. Keys of personal values are keyed HMACs (see `privacy`).
    pub(super) fn send_rules(&self, req: &SendRequest, country: &str, tripped: bool) -> Vec<LimitRule> {
        let l = &self.settings.policy.limits;
        let h = &self.hasher;
        let phone = &req.phone;
        let mut rules = Vec::new();
        let mut add = |scope, rate: Option<Rate>, key: &dyn Fn() -> String| {
            if let Some(rate) = rate {
                rules.push(LimitRule::new(scope, key(), rate));
            }
        };
        add(LimitScope::PhoneSend, l.phone_send, &|| privacy::phone_send_key(h, phone));
        add(LimitScope::PhoneSendHourly, l.phone_send_hourly, &|| {
            privacy::phone_limit_key(h, "send:phone:hourly", phone)
        });
        add(LimitScope::PhoneSendDaily, l.phone_send_daily, &|| privacy::phone_limit_key(h, "send:phone:daily", phone));
        add(LimitScope::PrefixSend, l.prefix_send, &|| privacy::limit_key(h, "send:prefix", phone.prefix().as_bytes()));
        add(LimitScope::CountrySend, l.country_send, &|| format!("send:country:{country}"));
        add(LimitScope::GlobalSendHourly, l.global_send_hourly, &|| "send:global:hourly".to_owned());
        add(LimitScope::GlobalSendDaily, l.global_send_daily, &|| "send:global:daily".to_owned());
        if let Some(ip) = req.client_ip {
            // One IPv4 address, or one IPv6 network: a /64 is one client, not 2^64.
            let client = ClientKey::new(ip, l.ipv6_prefix).to_string();
            add(LimitScope::IpSend, l.ip_send, &|| privacy::limit_key(h, "send:ip", client.as_bytes()));
            add(LimitScope::IpSendHourly, l.ip_send_hourly, &|| {
                privacy::limit_key(h, "send:ip:hourly", client.as_bytes())
            });
        }
        if tripped {
            let trickle = Some(self.settings.policy.tripwire.trickle);
            add(LimitScope::Tripwire, trickle, &|| format!("tripwire:trickle:{country}"));
        }
        rules
    }

    /// Failed checks per phone (cleared by a success): looked at before every check, taken only
    /// by a check that compared a code and found it wrong.
    pub(super) fn phone_check_rule(&self, phone: &PhoneNumber) -> Option<LimitRule> {
        let rate = self.settings.policy.limits.phone_check_failures?;
        Some(LimitRule::new(LimitScope::PhoneCheck, self.phone_check_key(phone), rate))
    }

    /// Checks per client IP: taken by every check, whatever it finds.
    pub(super) fn ip_check_rule(&self, client_ip: Option<IpAddr>) -> Option<LimitRule> {
        let (rate, ip) = (self.settings.policy.limits.ip_check?, client_ip?);
        let client = ClientKey::new(ip, self.settings.policy.limits.ipv6_prefix).to_string();
        let key = privacy::limit_key(&self.hasher, "check:ip", client.as_bytes());
        Some(LimitRule::new(LimitScope::IpCheck, key, rate))
    }

    pub(super) fn phone_check_key(&self, phone: &PhoneNumber) -> String {
        privacy::phone_limit_key(&self.hasher, "check:phone", phone)
    }
}

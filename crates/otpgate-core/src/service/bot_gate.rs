//! The bot check on send: required where the policy says so, and the way past a shared budget
//! (a number block, a country) for a client that passes it.

use tracing::{info, warn};

use super::events::{ip_field, security_event_limit};
use super::{PROVIDER_RETRY_AFTER, SendRequest, VerificationService};
use crate::bot::BotCheck;
use crate::limits::{LimitRule, Rate};
use crate::{OtpError, Timestamp};

impl VerificationService {
    /// Refuses a send the bot check requires and the client did not pass; `true` when the
    /// client passed it (a token is single use: it is never verified twice).
    pub(super) async fn required_bot_check(&self, req: &SendRequest, country: &str) -> Result<bool, OtpError> {
        match &self.settings.bot_check {
            Some(bot) if bot.required.applies_to(country) => {
                self.verify_bot_token(bot, req, country).await.map(|()| true)
            }
            _ => Ok(false),
        }
    }

    /// Verifies the request's bot token: `invalid_request` naming `bot_token` when it is
    /// missing or fails, `provider_unavailable` when the verifier cannot be asked (fail closed).
    pub(super) async fn verify_bot_token(
        &self,
        bot: &BotCheck,
        req: &SendRequest,
        country: &str,
    ) -> Result<(), OtpError> {
        let verifier = &bot.verifier;
        let refused = |outcome: &'static str| {
            warn!(event = "otp.send", outcome, phone = %req.phone.masked(), country = %country, client_ip = %ip_field(req.client_ip));
            metrics::counter!("otpgate_sends_total", "outcome" => outcome, "country" => country.to_owned())
                .increment(1);
            Err(OtpError::InvalidRequest { field: Some("bot_token"), reason: "please complete the challenge first" })
        };
        let Some(token) = req.bot_token.as_deref().filter(|t| !t.is_empty()) else {
            return refused("bot_check_missing");
        };
        match verifier.verify(token, req.client_ip).await {
            Ok(true) => Ok(()),
            Ok(false) => refused("bot_check_failed"),
            Err(_) => Err(OtpError::ProviderUnavailable { retry_after: PROVIDER_RETRY_AFTER }),
        }
    }

    /// A send was refused by `denied`. When that is a shared budget (the prefix limit, a
    /// country limit, the tripwire) and a bot check is configured, one attacker must not be
    /// able to deny a whole number block or country to everyone: a client that passes the check
    /// may send (without a token the answer is `invalid_request` naming `bot_token`). What a
    /// passed check buys is bounded: the send is counted in an allowance of its own per shared
    /// budget key, `limit_factor` times that budget (so a bot-solving farm cannot pump a block
    /// or country without end), and it still takes from every other limit (per phone, per IP,
    /// the global spend cap), all or nothing. Otherwise the refusal stands.
    pub(super) async fn send_past_a_shared_budget(
        &self,
        req: &SendRequest,
        country: &str,
        rules: Vec<LimitRule>,
        denied: crate::Denied,
        bot_passed: bool,
        now: Timestamp,
    ) -> Result<(), OtpError> {
        let masked = req.phone.masked();
        let refuse = |denied: crate::Denied| {
            security_event_limit(denied.scope, &masked, country, req.client_ip, denied.retry_after);
            Err(OtpError::RateLimited { retry_after: denied.retry_after, scope: denied.scope })
        };
        let bot = match &self.settings.bot_check {
            Some(bot) if bot.limit_factor > 0 && denied.scope.is_shared_budget() => bot,
            _ => return refuse(denied),
        };
        let (shared, others): (Vec<LimitRule>, Vec<LimitRule>) =
            rules.into_iter().partition(|rule| rule.scope.is_shared_budget());
        // A challenge only where passing it can help: the limits it does not lift have room.
        if let Err(other) = self.limiter.peek(&others, now).await? {
            return refuse(other);
        }
        if !bot_passed {
            self.verify_bot_token(bot, req, country).await?;
        }
        let allowances = shared.into_iter().map(|rule| {
            let rate = Rate::new(rule.rate.count.saturating_mul(bot.limit_factor), rule.rate.period);
            LimitRule::new(rule.scope, format!("bot_passed:{}", rule.key), rate)
        });
        let lifted: Vec<LimitRule> = others.into_iter().chain(allowances).collect();
        if let Err(denied) = self.limiter.acquire(&lifted, now).await? {
            return refuse(denied);
        }
        metrics::counter!("otpgate_limit_hits_total", "scope" => denied.scope.as_str()).increment(1);
        info!(
            event = "otp.limit",
            outcome = "lifted_by_bot_check",
            scope = denied.scope.as_str(),
            phone = %masked,
            country = %country,
        );
        Ok(())
    }
}

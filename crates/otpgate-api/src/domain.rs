//! The wire names of the domain's values (feature `domain`): the one place the two are matched,
//! so the server converts with `.into()` and a new channel or status fails to compile here.

use otpgate_core::{Channel, VerificationStatus};

use crate::{ChannelName, VerificationStatusName};

impl From<ChannelName> for Channel {
    fn from(c: ChannelName) -> Self {
        match c {
            ChannelName::Sms => Channel::Sms,
            ChannelName::Whatsapp => Channel::Whatsapp,
            ChannelName::Call => Channel::Call,
        }
    }
}

impl From<Channel> for ChannelName {
    fn from(c: Channel) -> Self {
        match c {
            Channel::Sms => ChannelName::Sms,
            Channel::Whatsapp => ChannelName::Whatsapp,
            Channel::Call => ChannelName::Call,
        }
    }
}

impl From<VerificationStatus> for VerificationStatusName {
    fn from(s: VerificationStatus) -> Self {
        match s {
            VerificationStatus::Pending => VerificationStatusName::Pending,
            VerificationStatus::Approved => VerificationStatusName::Approved,
            VerificationStatus::Canceled => VerificationStatusName::Canceled,
            VerificationStatus::Dead => VerificationStatusName::Dead,
            VerificationStatus::Expired => VerificationStatusName::Expired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire name is the domain's name, both ways, for every value.
    #[test]
    fn wire_names_are_the_domain_names() {
        for channel in Channel::ALL {
            let wire = ChannelName::from(channel);
            assert_eq!(serde_json::to_value(wire).unwrap(), channel.as_str());
            assert_eq!(Channel::from(wire), channel);
        }
        use VerificationStatus::*;
        for status in [Pending, Approved, Canceled, Dead, Expired] {
            let wire = VerificationStatusName::from(status);
            assert_eq!(serde_json::to_value(wire).unwrap(), status.as_str());
        }
    }
}

//! AWS KMS key ARNs, and the multi-Region key (MRK) matching rules of the ESDK
//! specification (aws-kms-mrk-match-for-decrypt): two MRK ARNs identify the
//! same key when everything but the region matches.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KmsArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    /// `key` or `alias`.
    pub resource_type: String,
    pub resource_id: String,
}

impl KmsArn {
    /// Parses `arn:PARTITION:kms:REGION:ACCOUNT:key/ID` (or `alias/NAME`).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let partition = parts.next()?;
        if parts.next()? != "kms" {
            return None;
        }
        let region = parts.next()?;
        let account = parts.next()?;
        let resource = parts.next()?;
        let (resource_type, resource_id) = resource.split_once('/')?;
        if partition.is_empty()
            || region.is_empty()
            || account.is_empty()
            || resource_id.is_empty()
            || !matches!(resource_type, "key" | "alias")
        {
            return None;
        }
        Some(KmsArn {
            partition: partition.into(),
            region: region.into(),
            account: account.into(),
            resource_type: resource_type.into(),
            resource_id: resource_id.into(),
        })
    }

    pub fn is_alias(&self) -> bool {
        self.resource_type == "alias"
    }

    /// A multi-Region key: a key whose id starts with `mrk-`.
    pub fn is_mrk(&self) -> bool {
        self.resource_type == "key" && self.resource_id.starts_with("mrk-")
    }

    /// The same key in another region (meaningful for MRKs).
    pub fn in_region(&self, region: &str) -> KmsArn {
        KmsArn {
            region: region.to_owned(),
            ..self.clone()
        }
    }

    /// ESDK MRK match: identical, or both MRKs equal in all but region.
    pub fn mrk_match(&self, other: &KmsArn) -> bool {
        if self == other {
            return true;
        }
        self.is_mrk()
            && other.is_mrk()
            && self.partition == other.partition
            && self.account == other.account
            && self.resource_id == other.resource_id
    }
}

impl fmt::Display for KmsArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:kms:{}:{}:{}/{}",
            self.partition, self.region, self.account, self.resource_type, self.resource_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let a = KmsArn::parse("arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd").unwrap();
        let b = KmsArn::parse("arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd").unwrap();
        let c = KmsArn::parse("arn:aws:kms:eu-west-1:111122223333:key/1234abcd").unwrap();
        let d = KmsArn::parse("arn:aws:kms:us-east-1:111122223333:key/1234abcd").unwrap();
        assert!(a.is_mrk() && a.mrk_match(&b));
        assert!(
            !c.mrk_match(&d),
            "ordinary keys in different regions are different keys"
        );
        assert!(d.mrk_match(&d.clone()));
        assert_eq!(
            b.to_string(),
            "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd"
        );
        assert!(
            KmsArn::parse("arn:aws:kms:us-east-1:111122223333:alias/genesys")
                .unwrap()
                .is_alias()
        );
        for bad in [
            "",
            "arn:aws:s3:::bucket",
            "arn:aws:kms:us-east-1:1:thing/x",
            "arn:aws:kms::1:key/x",
            "1234abcd",
        ] {
            assert!(KmsArn::parse(bad).is_none(), "{bad}");
        }
    }
}

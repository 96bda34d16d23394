//! The fixed label schema (`../shared/taxonomy.md`, v1): ids, Chinese names and
//! the risk-level rule. Every other module speaks these types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Version of the label schema the ids below belong to.
pub const TAXONOMY_VERSION: &str = "v1";

/// A fixed set of labels with stable string ids.
pub trait Label: Copy + Eq + Sized + 'static {
    /// Every label, in head-output order.
    const ALL: &'static [Self];
    fn id(self) -> &'static str;
    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|&l| l == self)
            .expect("ALL lists every variant")
    }
    fn from_index(i: usize) -> Self {
        Self::ALL[i]
    }
    fn from_id(id: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|l| l.id() == id)
    }
}

macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $id:literal / $zh:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl Label for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn id(self) -> &'static str {
                match self { $(Self::$variant => $id),+ }
            }
        }

        impl $name {
            /// The Chinese name from the taxonomy.
            pub fn zh(self) -> &'static str {
                match self { $(Self::$variant => $zh),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.id())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_id(s).ok_or_else(|| {
                    let ids: Vec<&str> = Self::ALL.iter().map(|l| l.id()).collect();
                    format!("unknown {} {s:?}, expected one of {}", stringify!($name), ids.join(", "))
                })
            }
        }
    };
}

label_enum!(
    /// What the complaint is about (one label, the primary object).
    Category {
        ProductQuality => "product_quality" / "产品质量",
        ServiceAttitude => "service_attitude" / "服务态度",
        DeliveryLogistics => "delivery_logistics" / "物流配送",
        BillingFees => "billing_fees" / "费用收费",
        RefundAfterSales => "refund_after_sales" / "退款售后",
        ProcessingDelay => "processing_delay" / "办理时效",
        SystemFailure => "system_failure" / "系统故障",
        MisleadingSales => "misleading_sales" / "销售误导",
        PrivacySecurity => "privacy_security" / "隐私安全",
        FacilitiesEnvironment => "facilities_environment" / "环境设施",
        Other => "other" / "其他",
    }
);

label_enum!(
    /// Emotional intensity, ordered 0..3.
    Intensity {
        Calm => "calm" / "平静",
        Dissatisfied => "dissatisfied" / "不满",
        Angry => "angry" / "愤怒",
        Extreme => "extreme" / "激烈",
    }
);

label_enum!(
    /// What the complainant most likely wants.
    Motive {
        Vent => "vent" / "求发泄",
        Respect => "respect" / "求尊重",
        Compensation => "compensation" / "求补偿",
        Resolution => "resolution" / "求解决",
    }
);

label_enum!(
    /// Risk flags that call for priority handling.
    RiskFlag {
        MediaExposure => "media_exposure" / "媒体曝光",
        Regulator => "regulator" / "监管投诉",
        LegalAction => "legal_action" / "法律诉讼",
        SafetyInjury => "safety_injury" / "人身安全",
        ExtremeBehavior => "extreme_behavior" / "极端言行",
        RepeatComplaint => "repeat_complaint" / "重复投诉",
        MassIncident => "mass_incident" / "群体事件",
        PrivacyBreach => "privacy_breach" / "隐私泄露",
        VulnerableCustomer => "vulnerable_customer" / "弱势群体",
        LargeLoss => "large_loss" / "大额损失",
    }
);

label_enum!(
    /// Priority derived from the flags and the intensity.
    RiskLevel {
        Low => "low" / "低",
        Medium => "medium" / "中",
        High => "high" / "高",
        Critical => "critical" / "紧急",
    }
);

impl Intensity {
    /// The integer level 0..=3 used in records.
    pub fn level(self) -> u8 {
        self.index() as u8
    }

    pub fn from_level(level: u8) -> Option<Self> {
        Self::ALL.get(usize::from(level)).copied()
    }
}

impl RiskLevel {
    /// The taxonomy's rule:
    /// - critical: extreme_behavior, or safety_injury together with any other flag;
    /// - high: media_exposure, regulator, legal_action, safety_injury,
    ///   mass_incident, privacy_breach, or intensity 3;
    /// - medium: repeat_complaint, vulnerable_customer, large_loss, or intensity 2;
    /// - low: everything else.
    pub fn from_flags(flags: &[RiskFlag], intensity: Intensity) -> Self {
        use RiskFlag::*;
        let has = |f: RiskFlag| flags.contains(&f);
        let distinct = {
            let mut v = flags.to_vec();
            v.sort();
            v.dedup();
            v.len()
        };
        if has(ExtremeBehavior) || (has(SafetyInjury) && distinct > 1) {
            return Self::Critical;
        }
        let high = [
            MediaExposure,
            Regulator,
            LegalAction,
            SafetyInjury,
            MassIncident,
            PrivacyBreach,
        ];
        if high.iter().any(|&f| has(f)) || intensity == Intensity::Extreme {
            return Self::High;
        }
        if [RepeatComplaint, VulnerableCustomer, LargeLoss]
            .iter()
            .any(|&f| has(f))
            || intensity == Intensity::Angry
        {
            return Self::Medium;
        }
        Self::Low
    }

    /// High and critical complaints are "flagged" and go to the risk feed.
    pub fn is_flagged(self) -> bool {
        self >= Self::High
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_ids_are_errors() {
        for &c in Category::ALL {
            assert_eq!(c.id().parse::<Category>().unwrap(), c);
        }
        assert_eq!(Category::ALL.len(), 11);
        assert_eq!(RiskFlag::ALL.len(), 10);
        assert!(
            "angry_customer"
                .parse::<Motive>()
                .unwrap_err()
                .contains("vent")
        );
        assert_eq!(
            serde_json::to_string(&RiskFlag::LargeLoss).unwrap(),
            "\"large_loss\""
        );
    }

    #[test]
    fn risk_level_follows_the_taxonomy() {
        use RiskFlag::*;
        let calm = Intensity::Calm;
        assert_eq!(RiskLevel::from_flags(&[], calm), RiskLevel::Low);
        assert_eq!(
            RiskLevel::from_flags(&[], Intensity::Angry),
            RiskLevel::Medium
        );
        assert_eq!(
            RiskLevel::from_flags(&[], Intensity::Extreme),
            RiskLevel::High
        );
        assert_eq!(RiskLevel::from_flags(&[LargeLoss], calm), RiskLevel::Medium);
        assert_eq!(RiskLevel::from_flags(&[Regulator], calm), RiskLevel::High);
        assert_eq!(
            RiskLevel::from_flags(&[SafetyInjury], calm),
            RiskLevel::High
        );
        assert_eq!(
            RiskLevel::from_flags(&[SafetyInjury, Regulator], calm),
            RiskLevel::Critical
        );
        assert_eq!(
            RiskLevel::from_flags(&[SafetyInjury, SafetyInjury], calm),
            RiskLevel::High,
            "a duplicate is not 'another flag'"
        );
        assert_eq!(
            RiskLevel::from_flags(&[ExtremeBehavior], calm),
            RiskLevel::Critical
        );
        assert!(RiskLevel::High.is_flagged() && !RiskLevel::Medium.is_flagged());
    }
}

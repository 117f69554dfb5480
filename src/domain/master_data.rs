//! Lists imported from the ERP (vendors, GL accounts). The ERP is their source of truth:
//! erpsync stores them so the AP app can code documents against ids the ERP will accept.

use super::validation::{Problems, ValidationErrors};
use serde::{Deserialize, Serialize};

/// A vendor record as imported from an ERP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vendor {
    /// The vendor's id in the ERP; documents reference it through [`super::VendorRef`].
    pub id: String,
    pub name: String,
    /// Default currency of the vendor's bills, when the ERP has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Inactive vendors stay importable (old bills reference them) but get no new bills.
    #[serde(default = "active")]
    pub active: bool,
}

fn active() -> bool {
    true
}

impl Vendor {
    pub fn as_ref(&self) -> super::VendorRef {
        super::VendorRef { id: self.id.clone(), name: self.name.clone() }
    }

    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut p = Problems::default();
        p.required("id", &self.id);
        p.required("name", &self.name);
        if let Some(c) = &self.currency {
            p.currency("currency", c);
        }
        p.finish()
    }
}

/// What a GL account is for; a bill line may only be coded to some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GlAccountType {
    Expense,
    CostOfGoodsSold,
    Asset,
    Liability,
    Equity,
    Income,
    Bank,
    Other,
}

impl GlAccountType {
    /// Whether an AP bill or PO line can be coded to an account of this type (bank and
    /// income accounts cannot, in every ERP erpsync talks to).
    pub fn codable_on_bills(self) -> bool {
        matches!(self, Self::Expense | Self::CostOfGoodsSold | Self::Asset | Self::Liability | Self::Other)
    }
}

/// A general-ledger account as imported from an ERP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlAccount {
    /// The account's id in the ERP (what `InvoiceLine::gl_account` holds).
    pub id: String,
    /// The account number people see ("6100").
    pub number: String,
    pub name: String,
    pub account_type: GlAccountType,
    #[serde(default = "active")]
    pub active: bool,
}

impl GlAccount {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut p = Problems::default();
        p.required("id", &self.id);
        p.required("number", &self.number);
        p.required("name", &self.name);
        p.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendors_and_accounts_parse_with_defaults() {
        let v: Vendor = serde_json::from_str(r#"{"id":"V1","name":"Müller"}"#).unwrap();
        assert!(v.active);
        v.validate().unwrap();
        let a: GlAccount =
            serde_json::from_str(r#"{"id":"81","number":"6100","name":"Consulting","account_type":"expense"}"#)
                .unwrap();
        assert!(a.account_type.codable_on_bills());
        assert!(!GlAccountType::Bank.codable_on_bills());
    }

    #[test]
    fn a_vendor_with_problems_names_them() {
        let v = Vendor {
            id: String::new(),
            name: "X".into(),
            currency: Some("XXX".into()),
            tax_id: None,
            email: None,
            active: true,
        };
        let errs = v.validate().unwrap_err();
        assert_eq!(errs.to_string(), "id: is required; currency: unknown currency code \"XXX\"");
    }
}

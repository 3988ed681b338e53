//! Wire compatibility of one edge: a consumer's own view of a package (the descriptors its
//! committed generated code was made from, `src/proto/descriptor.bin`) against what its provider
//! serves, with buf's breaking rules ([`crate::proto::breaking`]) taking the consumer's view as
//! the old side and the provider's as the new.
//!
//! The rules are buf's `WIRE` category (field numbers, wire types, cardinality, oneofs, deleted
//! fields whose number is not reserved, rpc request/response types and streaming), plus deleted
//! rpcs, services and packages: a consumer calls them. Anything the provider adds is compatible,
//! so a consumer pinned at an older contract passes; only the packages the consumer uses are
//! compared.

use std::collections::BTreeSet;
use std::path::Path;

use prost_types::FileDescriptorSet;

use crate::proto::config::BreakingConfig;
use crate::proto::{Finding, ProtoError, breaking, codegen, load};

/// The rules an edge is checked with.
pub const RULES: &[&str] = &["WIRE", "RPC_NO_DELETE", "PACKAGE_SERVICE_NO_DELETE", "PACKAGE_NO_DELETE"];

/// What of `consumer`'s view of `package` the provider's `served` files break, as
/// `RULE: message` findings located in the consumer's recorded file.
pub fn check(
    consumer: &FileDescriptorSet,
    served: &FileDescriptorSet,
    package: &str,
) -> Result<Vec<Finding>, ProtoError> {
    let old = codegen::recorded_set(consumer, &BTreeSet::from([package]));
    let config = BreakingConfig { use_: RULES.iter().map(|rule| (*rule).to_owned()).collect(), ..Default::default() };
    let (findings, _) =
        breaking::compare(&side(old), &side(served.clone()), &config, Path::new("plat test --contract"))?;
    Ok(findings)
}

/// Descriptors as the comparison reads them: no source text (positions fall back to the file).
fn side(descriptors: FileDescriptorSet) -> load::Compiled {
    // The comparison reads only the descriptors; the pool is for lint's custom options.
    load::Compiled { descriptors, pool: prost_reflect::DescriptorPool::new(), sources: load::Sources::new() }
}

/// One finding as a line: the rule, then buf's message naming the element.
pub fn describe(finding: &Finding) -> String {
    format!("{}: {} ({})", finding.rule, finding.message, finding.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_V1: &str = "syntax = \"proto3\";\npackage user.v1;\n\
        message User {\n  string id = 1;\n  string email = 2;\n}\n\
        message GetUserRequest { string id = 1; }\n\
        message GetUserResponse { User user = 1; }\n\
        service UserService {\n  rpc GetUser(GetUserRequest) returns (GetUserResponse);\n}\n";

    fn compile(files: &[(&str, &str)]) -> FileDescriptorSet {
        let sources = files.iter().map(|(name, text)| ((*name).to_owned(), (*text).to_owned())).collect();
        load::compile(sources).expect("valid proto").descriptors
    }

    fn user(text: &str) -> FileDescriptorSet {
        compile(&[("user/v1/user.proto", text)])
    }

    fn rules(findings: &[Finding]) -> Vec<String> {
        findings.iter().map(describe).collect()
    }

    #[test]
    fn the_same_contract_is_compatible() {
        assert_eq!(rules(&check(&user(USER_V1), &user(USER_V1), "user.v1").unwrap()), Vec::<String>::new());
    }

    #[test]
    fn a_consumer_pinned_before_a_field_was_added_is_compatible() {
        let provider = USER_V1.replace("string email = 2;", "string email = 2;\n  string display_name = 3;");
        assert_eq!(rules(&check(&user(USER_V1), &user(&provider), "user.v1").unwrap()), Vec::<String>::new());
        // An rpc added is compatible too.
        let provider = USER_V1.replace(
            "rpc GetUser(GetUserRequest) returns (GetUserResponse);",
            "rpc GetUser(GetUserRequest) returns (GetUserResponse);\n  rpc Ping(GetUserRequest) returns (GetUserRequest);",
        );
        assert_eq!(rules(&check(&user(USER_V1), &user(&provider), "user.v1").unwrap()), Vec::<String>::new());
    }

    #[test]
    fn a_field_whose_type_changed_names_the_rule_the_message_and_the_field() {
        let consumer = USER_V1.replace("string email = 2;", "int64 email = 2;");
        let findings = rules(&check(&user(&consumer), &user(USER_V1), "user.v1").unwrap());
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].starts_with("FIELD_WIRE_COMPATIBLE_TYPE: Field \"2\" with name \"email\" on message \"User\" changed type from \"int64\" to \"string\""), "{findings:?}");
    }

    #[test]
    fn a_field_the_consumer_reads_and_the_provider_dropped_unreserved_breaks() {
        let provider = USER_V1.replace("string email = 2;", "");
        let findings = rules(&check(&user(USER_V1), &user(&provider), "user.v1").unwrap());
        assert_eq!(
            findings,
            ["FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED: Previously present field \"2\" with name \"email\" on message \
              \"User\" was deleted without reserving the number \"2\". (user/v1/user.proto)"]
        );
        let reserved = USER_V1.replace("string email = 2;", "reserved 2;");
        assert_eq!(rules(&check(&user(USER_V1), &user(&reserved), "user.v1").unwrap()), Vec::<String>::new());
    }

    #[test]
    fn a_deleted_rpc_and_a_changed_request_type_break() {
        let provider = USER_V1.replace("rpc GetUser(GetUserRequest) returns (GetUserResponse);", "");
        let findings = rules(&check(&user(USER_V1), &user(&provider), "user.v1").unwrap());
        assert!(
            findings.iter().any(|f| f.starts_with("RPC_NO_DELETE: Previously present RPC \"GetUser\"")),
            "{findings:?}"
        );
        let provider = USER_V1.replace("rpc GetUser(GetUserRequest)", "rpc GetUser(User)");
        let findings = rules(&check(&user(USER_V1), &user(&provider), "user.v1").unwrap());
        assert!(findings.iter().any(|f| f.starts_with("RPC_SAME_REQUEST_TYPE: ")), "{findings:?}");
    }

    #[test]
    fn only_the_used_package_is_compared() {
        let other = "syntax = \"proto3\";\npackage order.v1;\nmessage Order { string id = 1; }\n";
        let consumer = compile(&[("user/v1/user.proto", USER_V1), ("order/v1/order.proto", other)]);
        // The provider serves user.v1 only; the consumer's view of order.v1 is another edge's.
        assert_eq!(rules(&check(&consumer, &user(USER_V1), "user.v1").unwrap()), Vec::<String>::new());
    }

    #[test]
    fn a_provider_that_serves_nothing_of_the_package_breaks() {
        let findings = rules(&check(&user(USER_V1), &FileDescriptorSet::default(), "user.v1").unwrap());
        assert!(findings.iter().any(|f| f.starts_with("PACKAGE_NO_DELETE: ")), "{findings:?}");
    }
}

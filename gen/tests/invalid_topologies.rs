//! Broken topology files, each refused with its exact diagnostic at its exact place.
//! In each case `»` marks where the diagnostic must point; it is removed before the
//! text is parsed.

use canopy_gen::diag::Severity;

const SITES: &str = r#"
site "central" {
  provider = "onprem"
  cidr     = "10.0.0.0/16"
}
site "edge" {
  provider = "edge"
  cidr     = "10.1.0.0/16"
}
link "edge" {
  sites = ["edge", "central"]
}
account "APP" {
  user "app" {}
}
"#;

/// Check that `marked` (with `»` at the expected place) is refused with `message`
/// there, and that the rendered report names file:line:col.
#[track_caller]
fn refused(marked: &str, message: &str) {
    let at = marked.find('»').expect("case has no » marker");
    let text = marked.replacen('»', "", 1);
    let want = canopy_gen::diag::line_col(&text, at);
    let report = match canopy_gen::load_str("case.hcl", &text) {
        Ok(_) => panic!("accepted, but expected: {message}\n{text}"),
        Err(r) => r,
    };
    let found = report
        .diagnostics
        .iter()
        .find(|d| d.message == message)
        .unwrap_or_else(|| panic!("expected {message:?}, got:\n{}", report));
    assert_eq!(found.severity, Severity::Error);
    assert_eq!(
        found.location(&text),
        want,
        "{message:?} points at the wrong place:\n{report}"
    );
    assert!(found.help.is_some(), "{message:?} has no help line");
    let rendered = report.to_string();
    let place = format!("--> case.hcl:{}:{}", want.0, want.1);
    assert!(rendered.contains(&place), "{rendered}");
    assert!(rendered.contains("help:"), "{rendered}");
}

#[test]
fn syntax_error_points_where_the_parser_stopped() {
    refused(
        "site \"a\" {\n  provider = »}\n",
        "syntax error: invalid expression; expected `\"`, `[`, `{`, `-`, `!`, `(`, `_`, `<`, letter or digit",
    );
}

#[test]
fn unknown_top_level_block_is_named() {
    refused(
        "»sitee \"a\" {}\n",
        "unknown block `sitee` in the top level",
    );
}

#[test]
fn unknown_attribute_is_named_with_its_block() {
    refused(
        "site \"a\" {\n  provider = \"aws\"\n  »zone = \"x\"\n}\n",
        "unknown attribute `zone` in site \"a\"",
    );
}

#[test]
fn a_block_written_as_an_attribute_is_explained() {
    refused(
        &format!("{SITES}hub \"h\" {{\n  site = \"central\"\n  »jetstream = {{}}\n}}\n"),
        "unknown attribute `jetstream` in hub \"h\"",
    );
}

#[test]
fn a_number_given_as_a_string_is_a_type_error() {
    refused(
        &format!("{SITES}hub \"h\" {{\n  site = \"central\"\n  size = »\"3\"\n}}\n"),
        "`size` must be a whole number, found a string",
    );
}

#[test]
fn interpolation_is_not_evaluated() {
    refused(
        "site \"a\" {\n  provider = »\"${var.p}\"\n}\n",
        "`provider` must be a string, found a template",
    );
}

#[test]
fn a_site_needs_a_name() {
    refused(
        "»site {\n  provider = \"aws\"\n}\n",
        "`site` block without a name",
    );
}

#[test]
fn duplicate_site_is_refused() {
    refused(
        "site \"a\" {\n  provider = \"aws\"\n}\nsite »\"a\" {\n  provider = \"gcp\"\n}\n",
        "duplicate site \"a\"",
    );
}

#[test]
fn unknown_provider_is_refused() {
    refused(
        "site \"a\" {\n  provider = »\"azure\"\n}\n",
        "unknown provider \"azure\"",
    );
}

#[test]
fn a_site_needs_a_provider() {
    refused(
        "site »\"a\" {\n  region = \"x\"\n}\n",
        "site \"a\" has no `provider`",
    );
}

#[test]
fn invalid_cidr_is_refused() {
    refused(
        "site \"a\" {\n  provider = \"aws\"\n  cidr = »\"10.0.0.0/33\"\n}\n",
        "invalid CIDR \"10.0.0.0/33\"",
    );
}

#[test]
fn a_link_joins_two_sites() {
    refused(
        "site \"a\" {\n  provider = \"aws\"\n}\nlink \"l\" {\n  sites = »[\"a\"]\n}\n",
        "a link joins exactly two sites",
    );
}

#[test]
fn a_link_to_an_unknown_site_is_refused() {
    refused(
        "site \"a\" {\n  provider = \"aws\"\n}\nlink \"l\" {\n  sites = [\"a\", »\"b\"]\n}\n",
        "unknown site \"b\"",
    );
}

#[test]
fn a_link_from_a_site_to_itself_is_refused() {
    refused(
        "site \"a\" {\n  provider = \"aws\"\n}\nlink \"l\" {\n  sites = »[\"a\", \"a\"]\n}\n",
        "a link must join two different sites",
    );
}

#[test]
fn linked_sites_with_overlapping_networks_are_refused() {
    refused(
        "site \"a\" {\n  provider = \"aws\"\n  cidr = \"10.0.0.0/8\"\n}\nsite \"b\" {\n  provider = \"gcp\"\n  cidr = \"10.5.0.0/16\"\n}\nlink \"l\" {\n  sites = »[\"a\", \"b\"]\n}\n",
        "sites \"a\" (10.0.0.0/8) and \"b\" (10.5.0.0/16) overlap",
    );
}

#[test]
fn a_latency_needs_a_unit() {
    refused(
        "site \"a\" {\n  provider = \"aws\"\n}\nsite \"b\" {\n  provider = \"gcp\"\n}\nlink \"l\" {\n  sites = [\"a\", \"b\"]\n  latency = »\"20 ms\"\n}\n",
        "invalid latency \"20 ms\"",
    );
}

#[test]
fn a_bandwidth_needs_a_bit_rate_unit() {
    refused(
        "site \"a\" {\n  provider = \"aws\"\n}\nsite \"b\" {\n  provider = \"gcp\"\n}\nlink \"l\" {\n  sites = [\"a\", \"b\"]\n  bandwidth = »\"10mb\"\n}\n",
        "invalid bandwidth \"10mb\"",
    );
}

#[test]
fn the_system_account_name_is_reserved() {
    refused("account »\"SYS\" {}\n", "account name \"SYS\" is reserved");
}

#[test]
fn a_user_belongs_to_one_account() {
    refused(
        "account \"A\" {\n  user \"u\" {}\n}\naccount \"B\" {\n  user »\"u\" {}\n}\n",
        "user \"u\" is already defined in account \"A\"",
    );
}

#[test]
fn an_export_needs_a_valid_subject() {
    refused(
        "account \"A\" {\n  export { stream = »\"sensors..x\" }\n}\n",
        "invalid subject \"sensors..x\" in an export",
    );
}

#[test]
fn an_import_from_an_unknown_account_is_refused() {
    refused(
        "account \"A\" {\n  import {\n    stream  = \"x.>\"\n    account = »\"NOPE\"\n  }\n}\n",
        "unknown account \"NOPE\"",
    );
}

#[test]
fn an_import_needs_a_matching_export() {
    refused(
        "account \"CORE\" {\n  export { stream = \"alerts.>\" }\n}\naccount \"A\" {\n  import {\n    stream  = »\"metrics.>\"\n    account = \"CORE\"\n  }\n}\n",
        "account \"CORE\" exports no stream matching \"metrics.>\"",
    );
}

#[test]
fn a_mapping_cannot_reference_a_missing_wildcard() {
    refused(
        "account \"A\" {\n  mappings = {\n    \"orders.*\" = »\"site.$2\"\n  }\n}\n",
        "mapping destination refers to wildcard 2, but \"orders.*\" has 1",
    );
}

#[test]
fn a_hub_on_an_unknown_site_is_refused() {
    refused(
        "hub \"h\" {\n  site = »\"nowhere\"\n}\n",
        "unknown site \"nowhere\"",
    );
}

#[test]
fn a_hub_size_must_be_in_range() {
    refused(
        &format!("{SITES}hub \"h\" {{\n  site = \"central\"\n  size = »0\n}}\n"),
        "hub size 0 is out of range",
    );
}

#[test]
fn two_listeners_of_one_server_cannot_share_a_port() {
    refused(
        &format!("{SITES}hub \"h\" {{\n  site = \"central\"\n  client_port = 4222\n  http_port = »4222\n}}\n"),
        "client_port and http_port are both 4222",
    );
}

#[test]
fn servers_on_local_sites_cannot_share_a_port() {
    refused(
        "site \"dev\" {\n  provider = \"local\"\n}\naccount \"APP\" {}\nhub \"h\" {\n  site = \"dev\"\n}\nleaf \"l\" {\n  site = \"dev\"\n  http_port = »8222\n  client_port = 5222\n  upstream \"h\" { account = \"APP\" }\n}\n",
        "port 8222 on 127.0.0.1 is already the http_port of \"h\"",
    );
}

#[test]
fn an_upstream_to_an_unknown_hub_is_refused() {
    refused(
        &format!("{SITES}hub \"hub\" {{\n  site = \"central\"\n}}\nleaf \"l\" {{\n  site = \"edge\"\n  upstream »\"hbu\" {{ account = \"APP\" }}\n}}\n"),
        "unknown hub \"hbu\"",
    );
}

#[test]
fn an_upstream_must_be_a_hub_not_a_leaf() {
    refused(
        &format!("{SITES}leaf \"a\" {{\n  site = \"central\"\n}}\nleaf \"b\" {{\n  site = \"edge\"\n  upstream »\"a\" {{ account = \"APP\" }}\n}}\n"),
        "\"a\" is a leaf, not a hub",
    );
}

#[test]
fn an_account_bound_on_one_side_only_is_refused() {
    refused(
        &format!("{SITES}account \"OTHER\" {{}}\nhub \"hub\" {{\n  site = \"central\"\n  accounts = [\"OTHER\"]\n}}\nleaf \"l\" {{\n  site = \"edge\"\n  upstream \"hub\" {{ account = »\"APP\" }}\n}}\n"),
        "account \"APP\" is bound on leaf \"l\" but hub \"hub\" does not serve it",
    );
}

#[test]
fn an_upstream_needs_its_account() {
    refused(
        &format!("{SITES}hub \"hub\" {{\n  site = \"central\"\n}}\nleaf \"l\" {{\n  site = \"edge\"\n  »upstream \"hub\" {{}}\n}}\n"),
        "upstream \"hub\" needs the local `account` it carries",
    );
}

#[test]
fn the_seed_three_hub_mesh_is_a_loop() {
    // The seed article's US ↔ EU ↔ APAC triangle of leaf links in one account.
    refused(
        r#"
site "us" {
  provider = "aws"
  cidr = "10.1.0.0/16"
}
site "eu" {
  provider = "aws"
  cidr = "10.2.0.0/16"
}
site "apac" {
  provider = "gcp"
  cidr = "10.3.0.0/16"
}
link "us-eu" { sites = ["us", "eu"] }
link "eu-apac" { sites = ["eu", "apac"] }
link "apac-us" { sites = ["apac", "us"] }
account "APP" {}
hub "us" {
  site = "us"
  upstream "eu" { account = "APP" }
}
hub "eu" {
  site = "eu"
  upstream "apac" { account = "APP" }
}
hub "apac" {
  site = "apac"
  »upstream "us" { account = "APP" }
}
"#,
        "leaf links form a loop in account \"APP\": hub \"apac\" already reaches hub \"us\" through other links",
    );
}

#[test]
fn a_leaf_on_another_site_needs_a_link() {
    refused(
        "site \"a\" {\n  provider = \"aws\"\n}\nsite \"b\" {\n  provider = \"gcp\"\n}\naccount \"APP\" {}\nhub \"h\" {\n  site = \"a\"\n}\nleaf \"l\" {\n  site = \"b\"\n  upstream »\"h\" { account = \"APP\" }\n}\n",
        "no link joins site \"b\" to site \"a\" (hub \"h\")",
    );
}

#[test]
fn a_leaf_named_like_a_hub_server_collides() {
    refused(
        &format!("{SITES}hub \"c\" {{\n  site = \"central\"\n  size = 2\n}}\nleaf »\"c-1\" {{\n  site = \"central\"\n  upstream \"c\" {{ account = \"APP\" }}\n}}\n"),
        "server name \"c-1\" is taken",
    );
}

#[test]
fn a_jetstream_domain_is_used_once() {
    refused(
        &format!("{SITES}hub \"hub\" {{\n  site = \"central\"\n  jetstream {{ domain = \"d\" }}\n}}\nleaf \"l\" {{\n  site = \"edge\"\n  jetstream {{ domain = »\"d\" }}\n  upstream \"hub\" {{ account = \"APP\" }}\n}}\n"),
        "JetStream domain \"d\" is already used by \"hub\"",
    );
}

#[test]
fn mtls_leaf_auth_needs_tls() {
    refused(
        "defaults {\n  tls = false\n  leaf_auth = »\"mtls\"\n}\n",
        "leaf_auth = \"mtls\" needs TLS",
    );
}

#[test]
fn a_deny_rule_needs_a_valid_subject() {
    refused(
        &format!("{SITES}hub \"hub\" {{\n  site = \"central\"\n}}\nleaf \"l\" {{\n  site = \"edge\"\n  upstream \"hub\" {{\n    account = \"APP\"\n    deny_exports = [»\"a.>.b\"]\n  }}\n}}\n"),
        "invalid subject \"a.>.b\" in deny_exports",
    );
}

#[test]
fn an_unknown_compression_mode_is_refused() {
    refused(
        &format!("{SITES}hub \"hub\" {{\n  site = \"central\"\n}}\nleaf \"l\" {{\n  site = \"edge\"\n  upstream \"hub\" {{\n    account = \"APP\"\n    compression = »\"zstd\"\n  }}\n}}\n"),
        "unknown compression \"zstd\"",
    );
}

#[test]
fn server_names_must_be_dns_labels() {
    refused(
        &format!("{SITES}hub »\"Hub_1\" {{\n  site = \"central\"\n}}\n"),
        "invalid hub name \"Hub_1\"",
    );
}

#[test]
fn a_local_site_cannot_be_linked() {
    refused(
        "site \"a\" {\n  provider = \"local\"\n}\nsite \"b\" {\n  provider = \"aws\"\n}\nlink \"l\" {\n  sites = [»\"a\", \"b\"]\n}\n",
        "site \"a\" is local and cannot be joined by a link",
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let text = "site \"a\" {\n  provider = \"azure\"\n}\nhub \"h\" {\n  site = \"b\"\n}\naccount \"SYS\" {}\n";
    let r = canopy_gen::load_str("case.hcl", text)
        .err()
        .expect("refused");
    assert_eq!(r.errors(), 3, "{r}");
}

#[test]
fn lint_warns_about_risky_but_legal_choices() {
    let text = format!(
        "defaults {{\n  tls = false\n}}\n{SITES}hub \"hub\" {{\n  site = \"central\"\n}}\nleaf \"l\" {{\n  site = \"edge\"\n  upstream \"hub\" {{ account = \"APP\" }}\n}}\n"
    );
    let l = canopy_gen::load_str("case.hcl", &text).unwrap_or_else(|r| panic!("{r}"));
    let w = canopy_gen::model::lint(&l.topology, &l.model);
    let messages: Vec<&str> = w.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages.contains(&"no TLS across site link \"edge\" (vpn)"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"leaf links authenticate with passwords"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"leaf \"l\" exports every subject of account \"APP\" to hub \"hub\""),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"upstream \"hub\" has a single hub URL"),
        "{messages:?}"
    );
    assert!(w.iter().all(|d| d.severity == Severity::Warning));
}

// ---- cloud sites (Terraform) ----

#[test]
fn a_cloud_site_needs_a_cidr_and_a_region() {
    refused(
        "site »\"c\" {\n  provider = \"aws\"\n  region   = \"eu-west-1\"\n}\n",
        "site \"c\" has no `cidr`",
    );
    refused(
        "site »\"c\" {\n  provider = \"gcp\"\n  cidr     = \"10.0.0.0/16\"\n}\n",
        "site \"c\" has no `region`",
    );
}

#[test]
fn a_cloud_cidr_must_hold_its_subnets() {
    refused(
        "site \"c\" {\n  provider = \"aws\"\n  region   = \"eu-west-1\"\n  cidr     = »\"10.0.0.0/24\"\n}\n",
        "cidr \"10.0.0.0/24\" is too small for a cloud network",
    );
}

#[test]
fn client_cidrs_may_not_be_the_whole_internet() {
    refused(
        "site \"c\" {\n  provider     = \"aws\"\n  region       = \"eu-west-1\"\n  cidr         = \"10.0.0.0/16\"\n  client_cidrs = [»\"0.0.0.0/0\"]\n}\n",
        "the whole internet is not a client range",
    );
    refused(
        "site \"c\" {\n  provider    = \"aws\"\n  region      = \"eu-west-1\"\n  cidr        = \"10.0.0.0/16\"\n  admin_cidrs = [»\"10.0.0.0/33\"]\n}\n",
        "invalid CIDR \"10.0.0.0/33\"",
    );
}

#[test]
fn site_asns_are_private_and_distinct() {
    refused(
        &format!("{SITES}site \"c\" {{\n  provider = \"onprem\"\n  asn      = »65535\n}}\n"),
        "asn 65535 is not a private ASN",
    );
    // The first site takes 64512 unless told otherwise.
    refused(
        &format!("{SITES}site \"c\" {{\n  provider = \"onprem\"\n  asn      = »64512\n}}\n"),
        "site \"c\" has the ASN of site \"central\" (64512)",
    );
}

#[test]
fn a_leaf_load_balancer_is_built_on_cloud_sites_only() {
    refused(
        &format!("{SITES}hub \"hub\" {{\n  site    = \"central\"\n  leaf_lb = »\"internal\"\n}}\n"),
        "leaf_lb on onprem site \"central\"",
    );
    refused(
        "site \"c\" {\n  provider = \"aws\"\n  region   = \"eu-west-1\"\n  cidr     = \"10.0.0.0/16\"\n}\nhub \"hub\" {\n  site    = \"c\"\n  leaf_lb = »\"public\"\n}\n",
        "unknown leaf_lb \"public\"",
    );
}

#[test]
fn an_ipsec_link_to_a_cloud_site_needs_both_cidrs() {
    refused(
        "site \"c\" {\n  provider = \"aws\"\n  region   = \"eu-west-1\"\n  cidr     = \"10.0.0.0/16\"\n}\nsite \"dc\" {\n  provider = \"onprem\"\n}\nlink \"l\" {\n  sites = [\"c\", \"dc\"]\n  vpn   = »\"ipsec\"\n}\n",
        "ipsec link \"l\" needs a cidr on site \"dc\"",
    );
}

#[test]
fn compression_other_than_off_is_refused_for_a_canopy_server_leaf() {
    refused(
        &format!("{SITES}hub \"hub\" {{\n  site = \"central\"\n}}\nleaf \"l\" {{\n  site = \"edge\"\n  upstream \"hub\" {{\n    account = \"APP\"\n    compression = »\"s2_auto\"\n  }}\n}}\n"),
        "canopy-server does not serve compression \"s2_auto\"",
    );
}

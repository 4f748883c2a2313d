//! The root modules of every example's bundle: they reference only what they declare,
//! supply every module input, agree on each VPN's two ends, and keep secrets out of
//! user-data and metadata.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use support::*;

#[test]
fn root_modules_declare_what_they_use_and_supply_every_module_input() {
    let mut per_provider: BTreeMap<String, usize> = BTreeMap::new();
    for ex in examples() {
        let files = tf_files(&ex);
        for (root, module) in roots(&files) {
            *per_provider.entry(module.clone()).or_default() += 1;
            let get = |f: &str| {
                files
                    .get(&format!("{root}/{f}"))
                    .cloned()
                    .unwrap_or_default()
            };
            // The module it calls is vendored in the bundle, byte for byte.
            for f in ["main.tf", "variables.tf", "outputs.tf", "versions.tf"] {
                assert_eq!(
                    files.get(&format!("terraform/modules/{module}/{f}")),
                    Some(&module_file(&module, f)),
                    "{root}: vendored {module}/{f}"
                );
            }
            for f in [
                "main.tf",
                "variables.tf",
                "outputs.tf",
                "versions.tf",
                "backend.tf",
                "terraform.tfvars.example",
                "README.md",
            ] {
                assert!(files.contains_key(&format!("{root}/{f}")), "{root}: no {f}");
            }
            let vars = declared(&get("variables.tf"), "variable");
            let used: BTreeSet<String> = ["main.tf", "outputs.tf"]
                .iter()
                .flat_map(|f| idents_after(&get(f), "var."))
                .collect();
            assert!(
                used.is_subset(&vars),
                "{root}: uses {used:?}, declares {vars:?}"
            );
            // Variables used in validations only count as used too.
            let unused: Vec<_> = vars.difference(&used).collect();
            assert!(unused.is_empty(), "{root}: declares unused {unused:?}");
            // Every variable the tfvars example sets is declared.
            let tfvars = parse("tfvars", &get("terraform.tfvars.example"));
            for a in tfvars.attributes() {
                assert!(
                    vars.contains(a.key.as_str()),
                    "{root}: tfvars example sets undeclared {}",
                    a.key.as_str()
                );
            }
            // Module inputs: the attributes of `module "site"`.
            let module_vars_text = module_file(&module, "variables.tf");
            let body = parse("variables.tf", &module_vars_text);
            let mut required = BTreeSet::new();
            let mut all_inputs = BTreeSet::new();
            for b in body.blocks().filter(|b| b.ident.as_str() == "variable") {
                let name = b.labels[0].as_str().to_string();
                all_inputs.insert(name.clone());
                if !b.body.has_attribute("default") {
                    required.insert(name);
                }
            }
            let main = parse("main.tf", &get("main.tf"));
            let m = main
                .blocks()
                .find(|b| b.ident.as_str() == "module")
                .expect("module block");
            let given: BTreeSet<String> = m
                .body
                .attributes()
                .map(|a| a.key.as_str().to_string())
                .filter(|k| k != "source")
                .collect();
            assert!(
                required.is_subset(&given),
                "{root}: missing inputs {:?}",
                required.difference(&given)
            );
            assert!(
                given.is_subset(&all_inputs),
                "{root}: unknown inputs {:?}",
                given.difference(&all_inputs)
            );
            let module_outputs = declared(&module_file(&module, "outputs.tf"), "output");
            let read = idents_after(&get("outputs.tf"), "module.site.");
            assert!(
                read.is_subset(&module_outputs),
                "{root}: reads {read:?}, module has {module_outputs:?}"
            );
            // Every VPN key file the root reads is in the bundle's secrets.
            for (i, _) in get("main.tf").match_indices("secrets/vpn-") {
                let rest = &get("main.tf")[i..];
                let path: String = rest.chars().take_while(|c| *c != '"').collect();
                let l = canopy_gen::load(&ex).unwrap();
                let b =
                    canopy_gen::build_bundle(&l.model, &Default::default(), &Default::default())
                        .unwrap();
                assert!(
                    b.files.contains_key(Path::new(&path)),
                    "{root}: reads {path}, which the bundle lacks"
                );
            }
        }
    }
    for p in ["aws", "gcp", "onprem"] {
        assert!(
            per_provider.get(p).copied().unwrap_or(0) >= 2,
            "the examples give {p} root modules: {per_provider:?}"
        );
    }
}

#[test]
fn vpn_ends_match_across_sites() {
    // multi-region: us (aws) ↔ apac (gcp) is an IPsec VPN; us ↔ eu (both aws) a peering.
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/multi-region.hcl");
    let files = tf_files(&ex);
    let us = &files["terraform/aws/us/main.tf"];
    let apac = &files["terraform/gcp/apac/main.tf"];
    let eu = &files["terraform/aws/eu/main.tf"];
    let attr = |text: &str, link: &str, key: &str| -> String {
        let start = text.find(&format!("\"{link}\" = {{")).unwrap();
        let block = &text[start..];
        let block = &block[..block.find("\n    }").unwrap()];
        block
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(" = ")?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("{key} in {block}"))
    };
    // The same inside /30s on both ends; each end names the other's ASN and CIDR.
    assert_eq!(
        attr(us, "us-apac", "inside_cidrs"),
        attr(apac, "us-apac", "inside_cidrs")
    );
    let asn = |text: &str, key: &str| -> String {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(" = ")?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
            .unwrap()
    };
    assert_eq!(attr(us, "us-apac", "peer_asn"), asn(apac, "router_asn"));
    assert_eq!(
        attr(apac, "us-apac", "peer_asn"),
        asn(us, "amazon_side_asn")
    );
    assert_ne!(asn(us, "amazon_side_asn"), asn(apac, "router_asn"));
    assert_eq!(attr(us, "us-apac", "peer_cidrs"), "[\"10.3.0.0/16\"]");
    assert_eq!(attr(apac, "us-apac", "peer_cidrs"), "[\"10.1.0.0/16\"]");
    // AWS takes .1 of each /30, so the GCP end takes .2.
    assert_eq!(attr(apac, "us-apac", "local_host"), "2");
    // Both ends read one pre-shared key from the bundle's secrets.
    let psk = "secrets/vpn-us-apac.psk";
    assert!(us.contains(psk) && apac.contains(psk));
    // One end requests the peering, the other accepts it.
    assert_eq!(attr(eu, "us-eu", "role"), "\"requester\"");
    assert_eq!(attr(us, "us-eu", "role"), "\"accepter\"");
    assert_eq!(attr(eu, "us-eu", "peer_cidr"), "\"10.1.0.0/16\"");
    assert_eq!(attr(us, "us-eu", "peer_cidr"), "\"10.2.0.0/16\"");

    // hybrid-cloud: gcp ↔ dc (on-prem) is a VPN; the on-prem README tells the router
    // the same ASNs, /30s and key file.
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hybrid-cloud.hcl");
    let files = tf_files(&ex);
    let gcp = &files["terraform/gcp/gcp/main.tf"];
    let readme = &files["terraform/onprem/dc/README.md"];
    let cidrs = attr(gcp, "dc-gcp", "inside_cidrs");
    for c in cidrs
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .map(|c| c.trim_matches('"'))
    {
        assert!(readme.contains(c), "{readme}");
    }
    assert!(readme.contains(&format!("peer ASN {}", asn(gcp, "router_asn"))));
    assert!(readme.contains("secrets/vpn-dc-gcp.psk"));
    assert_eq!(attr(gcp, "dc-gcp", "local_host"), "1");
    assert!(readme.contains("this end .2"), "{readme}");
}

#[test]
fn user_data_and_metadata_name_secrets_but_hold_none() {
    for m in ["aws", "gcp"] {
        let tpl = module_file(m, "cloud-init.sh.tftpl");
        for bad in [
            "PRIVATE KEY",
            "password",
            "secret_string",
            "secret_data",
            "psk",
        ] {
            assert!(
                !tpl.to_lowercase().contains(&bad.to_lowercase()),
                "{m}: cloud-init mentions {bad}"
            );
        }
        let main = module_file(m, "main.tf");
        let args = &main[main.find("cloud-init.sh.tftpl\", {").unwrap()..];
        let args = &args[..args.find("})").unwrap()];
        assert!(
            !args.contains("file("),
            "{m}: no file contents in user-data"
        );
    }
}

/// Two hub clusters on one site, one behind an internal and one behind an external
/// balancer: both are built, and the external one's public sources are asked for.
#[test]
fn a_site_with_internal_and_external_leaf_balancers_renders_both() {
    let text = r#"
name = "two"
site "c" {
  provider = "aws"
  region   = "eu-west-1"
  cidr     = "10.8.0.0/16"
}
account "APP" {
  user "app" {}
}
hub "inner" {
  site    = "c"
  leaf_lb = "internal"
}
hub "outer" {
  site      = "c"
  leaf_lb   = "external"
  leaf_port = 7423
}
"#;
    let l = canopy_gen::load_str("two.hcl", text).unwrap_or_else(|r| panic!("{r}"));
    let b = canopy_gen::build_bundle(&l.model, &Default::default(), &Default::default()).unwrap();
    let file = |f: &str| {
        String::from_utf8(
            b.files[Path::new(&format!("terraform/aws/c/{f}"))]
                .0
                .clone(),
        )
        .unwrap()
    };
    let main = file("main.tf");
    assert!(
        main.contains("\"inner\" = { scheme = \"internal\", port = 7422, private_ips = [\"10.8.0.5\", \"10.8.32.5\"] }"),
        "{main}"
    );
    assert!(
        main.contains("\"outer\" = { scheme = \"external\", port = 7423, private_ips = [] }"),
        "{main}"
    );
    let words = main.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("leaf_public_cidrs = var.leaf_public_cidrs"),
        "{main}"
    );
    assert!(file("variables.tf").contains("variable \"leaf_public_cidrs\""));
    let readme = file("README.md");
    assert!(
        readme.contains("`inner-lb`") && readme.contains("`outer-lb`"),
        "{readme}"
    );
}

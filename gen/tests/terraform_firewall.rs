//! Every cloud site opens exactly the ports its topology needs: the root modules'
//! inputs, and (against an AWS API mock, where terraform and moto are installed) the
//! planned security-group rules.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use support::*;

// ---- firewall: exactly the ports each topology needs -----------------------------

type Rule = (String, u16, String, Vec<String>);

/// The ingress the module makes from a root module's inputs, expanded the way the
/// modules' locals expand them: client port from client_cidrs, monitoring from
/// admin_cidrs, leafnode port from leaf_cidrs, cluster port from the cluster.
fn ingress_from_root(main: &str) -> BTreeSet<Rule> {
    let body = parse("main.tf", main);
    let m = body
        .blocks()
        .find(|b| b.ident.as_str() == "module")
        .unwrap();
    let list = |k: &str| -> Vec<String> {
        m.body
            .get_attribute(k)
            .map(|a| {
                a.value
                    .to_string()
                    .trim()
                    .trim_matches(|c| c == '[' || c == ']')
                    .split(',')
                    .map(|s| s.trim().trim_matches('"').to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (clients, admins, leafs) = (
        list("client_cidrs"),
        list("admin_cidrs"),
        list("leaf_cidrs"),
    );
    let servers = m.body.get_attribute("servers").expect("servers");
    let hcl_edit::expr::Expression::Object(obj) = &servers.value else {
        panic!("servers is an object")
    };
    let mut out = BTreeSet::new();
    for (k, v) in obj.iter() {
        let name = key_str(k);
        let hcl_edit::expr::Expression::Object(fields) = v.expr() else {
            panic!("server is an object")
        };
        let field = |f: &str| -> String {
            fields
                .iter()
                .find(|(k, _)| key_str(k) == f)
                .map(|(_, v)| v.expr().to_string().trim().trim_matches('"').to_string())
                .unwrap_or_default()
        };
        let port = |f: &str| field(f).parse::<u16>().unwrap();
        let mut add = |p: u16, what: &str, from: Vec<String>| {
            if p > 0 && !from.is_empty() {
                out.insert((name.clone(), p, what.to_string(), from));
            }
        };
        add(port("client_port"), "client", clients.clone());
        add(port("monitor_port"), "monitoring", admins.clone());
        add(port("leaf_port"), "leafnode", leafs.clone());
        add(
            port("cluster_port"),
            "cluster",
            vec![format!("cluster {}", field("cluster"))],
        );
    }
    out
}

fn key_str(k: &hcl_edit::expr::ObjectKey) -> String {
    match k {
        hcl_edit::expr::ObjectKey::Ident(i) => i.as_str().to_string(),
        hcl_edit::expr::ObjectKey::Expression(e) => e
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| e.to_string().trim().to_string()),
    }
}

fn rules(rows: &[(&str, u16, &str, &[&str])]) -> BTreeSet<Rule> {
    rows.iter()
        .map(|(s, p, w, f)| {
            (
                s.to_string(),
                *p,
                w.to_string(),
                f.iter().map(|x| x.to_string()).collect(),
            )
        })
        .collect()
}

/// A hub server's four openings and a leaf's two.
fn hub(
    name: &str,
    cluster: &str,
    clients: &'static [&'static str],
    admins: &'static [&'static str],
    leafs: &'static [&'static str],
) -> Vec<Rule> {
    let cl = format!("cluster {cluster}");
    vec![
        (name.into(), 4222, "client".into(), strs(clients)),
        (name.into(), 8222, "monitoring".into(), strs(admins)),
        (name.into(), 7422, "leafnode".into(), strs(leafs)),
        (name.into(), 6222, "cluster".into(), vec![cl]),
    ]
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// What each example's cloud sites must open, written out from the topologies.
fn expected_openings() -> BTreeMap<(&'static str, &'static str), BTreeSet<Rule>> {
    const EU: &[&str] = &["10.2.0.0/16"];
    const APAC: &[&str] = &["10.3.0.0/16"];
    let mut expected: BTreeMap<(&str, &str), BTreeSet<Rule>> = BTreeMap::new();
    // multi-region: US clients come from the VPC and an office; admins from a VPN
    // range; the US hubs take leaves from the US leaf and the EU and APAC hubs.
    let us_clients: &'static [&'static str] = &["10.1.0.0/16", "172.16.0.0/16"];
    let us_admins: &'static [&'static str] = &["10.255.0.0/24"];
    let mut us = BTreeSet::new();
    for i in 1..=3 {
        us.extend(hub(
            &format!("us-hub-{i}"),
            "us-hub",
            us_clients,
            us_admins,
            &["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"],
        ));
    }
    us.extend(rules(&[
        ("us-leaf-1", 4222, "client", us_clients),
        ("us-leaf-1", 8222, "monitoring", us_admins),
    ]));
    expected.insert(("multi-region", "terraform/aws/us"), us);
    for (site, cidr, region) in [("eu", EU, "aws"), ("apac", APAC, "gcp")] {
        let mut r = BTreeSet::new();
        for i in 1..=3 {
            r.extend(hub(
                &format!("{site}-hub-{i}"),
                &format!("{site}-hub"),
                cidr,
                cidr,
                cidr,
            ));
        }
        let leaf = format!("{site}-leaf-1");
        r.insert((leaf.clone(), 4222, "client".into(), strs(cidr)));
        r.insert((leaf, 8222, "monitoring".into(), strs(cidr)));
        let dir: &'static str = Box::leak(format!("terraform/{region}/{site}").into_boxed_str());
        expected.insert(("multi-region", dir), r);
    }
    // cloud-ingress: the AWS hubs take the data center's leaf (over IPsec) and the
    // shop's (its site's CIDR; through the external balancer, whose own security group
    // admits leaf_public_cidrs).
    let mut ingress = BTreeSet::new();
    for i in 1..=3 {
        ingress.extend(hub(
            &format!("cloud-hub-{i}"),
            "cloud-hub",
            &["10.70.0.0/16"],
            &["10.70.250.0/24"],
            &["10.201.0.0/24", "192.168.16.0/20"],
        ));
    }
    expected.insert(("cloud-ingress", "terraform/aws/aws"), ingress);
    // hybrid-cloud: each cloud site holds one leaf; nobody dials into the cloud.
    expected.insert(
        ("hybrid-cloud", "terraform/aws/aws"),
        rules(&[
            ("aws-leaf", 4222, "client", &["10.50.0.0/16"]),
            ("aws-leaf", 8222, "monitoring", &["10.50.0.0/16"]),
        ]),
    );
    expected.insert(
        ("hybrid-cloud", "terraform/gcp/gcp"),
        rules(&[
            ("gcp-leaf", 4222, "client", &["10.60.0.0/16"]),
            ("gcp-leaf", 8222, "monitoring", &["10.60.0.0/16"]),
        ]),
    );

    expected
}

#[test]
fn security_groups_and_firewalls_open_exactly_the_ports_each_topology_needs() {
    let expected = expected_openings();
    let mut seen = BTreeSet::new();
    for ex in examples() {
        let name = ex.file_stem().unwrap().to_string_lossy().into_owned();
        let files = tf_files(&ex);
        let l = canopy_gen::load(&ex).unwrap();
        for (root, module) in roots(&files) {
            if module == "onprem" {
                continue;
            }
            let key = expected
                .keys()
                .find(|(e, r)| *e == name && *r == root)
                .copied()
                .unwrap_or_else(|| panic!("no expected firewall for {name} {root}"));
            seen.insert(key);
            let want = &expected[&key];
            let got = ingress_from_root(&files[&format!("{root}/main.tf")]);
            assert_eq!(&got, want, "{name} {root}: the Terraform inputs");
            // The model's own account of it (the README table) agrees.
            let site_name = root.rsplit('/').next().unwrap();
            let site = l.model.site(site_name).unwrap();
            let from_model: BTreeSet<Rule> =
                canopy_gen::render::terraform::firewall::openings(&l.model, site)
                    .into_iter()
                    .map(|o| (o.server, o.port, o.what.to_string(), o.from))
                    .collect();
            assert_eq!(&from_model, want, "{name} {root}: openings()");
        }
    }
    assert_eq!(
        seen.len(),
        expected.len(),
        "every expected site was generated"
    );

    // The modules make no ingress but these rules: AWS through per-rule resources only
    // (no inline or legacy rules), GCP through the `ingress` and `cluster` rules and
    // the load balancer's; everything else in GCP is egress.
    let aws = module_file("aws", "main.tf");
    assert!(!aws.contains("resource \"aws_security_group_rule\""));
    assert!(!aws.contains("  ingress {") && !aws.contains("  egress {"));
    let ingress: BTreeSet<String> = blocks2(&aws)
        .into_iter()
        .filter(|(_, t, _)| t == "aws_vpc_security_group_ingress_rule")
        .map(|(_, _, n)| n)
        .collect();
    assert_eq!(
        ingress,
        ["cluster", "from_lb", "lb", "server"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let gcp = parse("gcp", &module_file("gcp", "main.tf"));
    let mut gcp_ingress = BTreeSet::new();
    for b in gcp.blocks() {
        if b.labels.first().map(|l| l.as_str()) == Some("google_compute_firewall") {
            let dir = b
                .body
                .get_attribute("direction")
                .map(|a| a.value.to_string())
                .unwrap_or_default();
            if dir.contains("INGRESS") {
                gcp_ingress.insert(b.labels[1].as_str().to_string());
            } else {
                assert!(dir.contains("EGRESS"), "a firewall without a direction");
            }
        }
    }
    assert_eq!(
        gcp_ingress,
        ["cluster", "ingress"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

/// A moto server (AWS API mock, `pip install 'moto[server]'`) on a free local port.
struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Moto {
    fn start() -> Option<Moto> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let m = Moto { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(m);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        None
    }

    /// Terraform override pointing the AWS provider at the mock.
    fn provider_override(&self) -> String {
        let url = format!("http://127.0.0.1:{}", self.port);
        let services = [
            "ec2",
            "iam",
            "s3",
            "secretsmanager",
            "kms",
            "ssm",
            "sts",
            "cloudwatchlogs",
            "elbv2",
        ];
        let mut s = String::from("provider \"aws\" {\n  access_key                  = \"test\"\n  secret_key                  = \"test\"\n  skip_credentials_validation = true\n  skip_requesting_account_id  = true\n  skip_metadata_api_check     = true\n  s3_use_path_style           = true\n\n  endpoints {\n");
        for svc in services {
            s.push_str(&format!("    {svc:<14} = \"{url}\"\n"));
        }
        s.push_str("  }\n}\n");
        s
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `terraform plan` of every AWS root module against moto, with every VPN peer and
/// peering filled in: the modules evaluate (no for_each over unknown values, no type
/// errors), every server gets an instance, and the planned security-group rules are
/// exactly the openings each topology needs.
#[test]
#[cfg_attr(
    not(all(have_terraform, have_moto)),
    ignore = "terraform or moto_server is not installed (pip install 'moto[server]')"
)]
fn terraform_plan_of_every_aws_site_against_a_mock_opens_exactly_the_expected_ports() {
    let Some(tf) = AwsTerraform::find("terraform plan") else {
        return;
    };
    let moto = Moto::start().expect("moto_server starts (the build found it)");
    let tmp = tempfile::tempdir().unwrap();
    let binary = tmp.path().join("server-binary");
    std::fs::write(&binary, b"a stand-in binary").unwrap();
    let expected = expected_openings();
    let mut planned = 0;
    for (name, model, out) in generated(tmp.path()) {
        for dir in aws_sites(&out) {
            let site_name = dir.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::write(dir.join("moto_override.tf"), moto.provider_override()).unwrap();
            let main = std::fs::read_to_string(dir.join("main.tf")).unwrap();
            // Every peer value the README says to fill in after the peer's apply.
            let mut vars = vec![format!("server_binary={}", binary.display())];
            if std::fs::read_to_string(dir.join("variables.tf"))
                .unwrap()
                .contains("variable \"leaf_public_cidrs\"")
            {
                vars.push("leaf_public_cidrs=[\"198.51.100.0/24\"]".into());
            }
            for (var, value) in [
                ("vpn_peer_ips", "\"203.0.113.10\""),
                ("peer_vpc_ids", "\"vpc-0123456789abcdef0\""),
                ("peering_ids", "\"pcx-0123456789abcdef0\""),
            ] {
                let links: Vec<String> = main
                    .match_indices(&format!("lookup(var.{var}, \""))
                    .map(|(i, m)| {
                        let rest = &main[i + m.len()..];
                        rest[..rest.find('"').unwrap()].to_string()
                    })
                    .map(|link| format!("\"{link}\" = {value}"))
                    .collect();
                if !links.is_empty() {
                    vars.push(format!("{var}={{ {} }}", links.join(", ")));
                }
            }
            tf.init(&dir);
            let mut plan = vec![
                "plan".to_string(),
                "-input=false".into(),
                "-no-color".into(),
                "-out=plan.bin".into(),
            ];
            for v in &vars {
                plan.push("-var".into());
                plan.push(v.clone());
            }
            tf.run(&dir, &plan);
            let json = tf.run(&dir, &args(&["show", "-json", "plan.bin"]));
            let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let changes = json["resource_changes"].as_array().unwrap();
            let of_type = |ty: &str, name: &str| -> Vec<&serde_json::Value> {
                changes
                    .iter()
                    .filter(|c| c["type"] == ty && c["name"] == name)
                    .collect()
            };
            // One instance per server, a volume per JetStream server.
            let servers: Vec<_> = model
                .servers
                .iter()
                .filter(|s| s.site == site_name)
                .collect();
            assert_eq!(of_type("aws_instance", "server").len(), servers.len());
            assert_eq!(
                of_type("aws_ebs_volume", "jetstream").len(),
                servers.iter().filter(|s| s.jetstream.is_some()).count()
            );
            // The planned ingress, as (server, port, sources).
            let mut got: BTreeMap<(String, u16), BTreeSet<String>> = BTreeMap::new();
            for c in of_type("aws_vpc_security_group_ingress_rule", "server") {
                let key = c["index"].as_str().unwrap();
                let server = key.split('/').next().unwrap().to_string();
                let after = &c["change"]["after"];
                let port = after["from_port"].as_u64().unwrap() as u16;
                assert_eq!(after["to_port"], after["from_port"]);
                assert_eq!(after["ip_protocol"], "tcp");
                got.entry((server, port))
                    .or_default()
                    .insert(after["cidr_ipv4"].as_str().unwrap().to_string());
            }
            for c in of_type("aws_vpc_security_group_ingress_rule", "cluster") {
                let server = c["index"].as_str().unwrap().to_string();
                let port = c["change"]["after"]["from_port"].as_u64().unwrap() as u16;
                got.entry((server, port))
                    .or_default()
                    .insert("cluster".into());
            }
            let want: BTreeMap<(String, u16), BTreeSet<String>> = expected
                [&(name.as_str(), format!("terraform/aws/{site_name}").as_str())]
                .iter()
                .map(|(s, p, what, from)| {
                    let from = if what == "cluster" {
                        ["cluster".to_string()].into()
                    } else {
                        from.iter().cloned().collect()
                    };
                    ((s.clone(), *p), from)
                })
                .collect();
            assert_eq!(got, want, "{name} {site_name}: planned ingress");
            planned += 1;
        }
    }
    assert!(planned >= 3, "planned {planned} AWS sites");
}

import ArgumentParser
import Foundation
import JanssonKit
import PortcullisAudit
import PortcullisCompiler
import PortcullisIR
import PortcullisKernel
import PortcullisReaders
import PortcullisRender

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Audit a host's rules: risks on any Docker-style host, or drift from a policy.",
        discussion: """
            Without a policy, reports risks, each with a severity, an explanation and the fix:
            FORWARD policy ACCEPT, DOCKER-USER missing or not first, ports published on every
            address with no source restriction, loopback publishes reachable from other hosts,
            ICC open, DNAT to addresses no bridge holds, duplicated and shadowed rules.

            With a policy, compares what it compiles to with what the host holds, on meaning:
            rules missing, unexpected or changed, orders that change a verdict, chains not
            hooked, sets and map elements that differ, other tools' tables that can drop what the
            policy accepts. Each finding names the table, the chain, the rule and the policy line.

            The rules come from a file (--ruleset FILE, '-' for stdin: iptables-save output or
            an 'nft -j list ruleset' document, told apart by content or by --from) or from the
            live host (--live: iptables-save and ip6tables-save, plus the nftables tables of other
            tools listed through libnftables; with --backend nftables, the whole ruleset through
            libnftables), in the current network namespace.
            Exit codes: 0 nothing found, 1 findings, 2 error.

            Examples:
              iptables-save | portcullis audit --ruleset -
              portcullis audit --live --format json
              portcullis audit policies/web-stack.policy --live
              portcullis audit policies/web-stack.policy --live --backend nftables
              nft -j list ruleset > host.json; portcullis audit policies/web-stack.policy --ruleset host.json
            """)

    @Argument(help: "A policy to compare the host with (optional).")
    var policy: String?

    @OptionGroup var host: HostRuleSource

    @Option(help: "The format of --ruleset: iptables-save or nft-json (default: told by content).")
    var from: String?

    @Option(
        help:
            "With --live: read the host through iptables (iptables-save) or nftables (libnftables JSON). Default: the policy's backend, else iptables."
    )
    var backend: String?

    @Option(help: "The layout to compare with (default: the policy's, else docker-20.10).")
    var layout: String?

    @Option(help: "text or json (schema: docs/audit.md).")
    var format = "text"

    func run() throws {
        guard (host.ruleset != nil) != host.live, format == "text" || format == "json" else {
            printError("error: give exactly one of --ruleset FILE and --live, and --format text or json")
            throw ExitCode(2)
        }
        guard from == nil || from == "iptables-save" || from == "nft-json", from == nil || host.ruleset != nil else {
            printError("error: --from is iptables-save or nft-json, and goes with --ruleset")
            throw ExitCode(2)
        }
        let compiler = Compiler()
        var lower: ((Firewall) throws -> Ruleset)?
        var policyBackend: String?
        if let policy {
            let (model, sources) = try compiler.check(policy).get(orExit: fail)
            policyBackend = model.host.backend
            let layout = self.layout
            lower = { firewall in
                // Resolved for the firewall the host was read from (some layouts exist for one only).
                let backend = firewall == .nftables ? Backend.nftables.rawValue : Backend.iptables.rawValue
                let (resolved, _) = try compiler.resolve(layout: layout, backend: backend, policy: model).get(
                    orExit: fail)
                switch resolved.lower(model, for: firewall) {
                case .success(let ruleset): return ruleset
                case .failure(let error): throw fail(.diagnostics(error.diagnostics, sources))
                }
            }
        }
        let backendName = backend ?? policyBackend ?? Backend.iptables.rawValue
        guard let liveBackend = Backend(rawValue: backendName) else {
            printError("error: unknown backend '\(backendName)'; backends are: iptables, nftables, nftables-json")
            throw ExitCode(2)
        }
        let host = try self.host.read(liveFirewall: liveBackend.firewall, format: from)

        var findings: [Finding]
        var expected = Ruleset()
        if let lower {
            // The policy as the host's kind of firewall holds it.
            expected = try lower(host.firewall)
            findings = DriftAudit(expected: expected, actual: host.ruleset, unreadTables: host.unreadTables).findings()
        } else {
            findings = RiskAudit(ruleset: host.ruleset).findings()
            for name in host.unreadTables {
                findings.append(
                    Finding(
                        id: "table-not-read", severity: .medium, table: name, chain: "", rule: nil,
                        explanation:
                            "the host has table \(name), of a family Portcullis does not read; it was not audited",
                        fix: "check it with 'nft list table \(name)'"))
            }
        }
        findings.sort { ($0.severity, $1.id) > ($1.severity, $0.id) }
        let spell = RuleSpeller(firewall: host.firewall, actual: host.ruleset, expected: expected)
        if format == "json" {
            print(json(findings, host: host, spell: spell).rendered(indent: 2))
        } else {
            printText(findings, host: host, spell: spell)
        }
        if !findings.isEmpty { throw ExitCode(1) }
    }

    static func location(_ provenance: Provenance?) -> String? {
        guard let provenance, let file = provenance.file else { return nil }
        if let line = provenance.line { return "\(file):\(line)" }
        return "\(file) \(provenance.statement)"
    }

    func json(_ findings: [Finding], host: HostRules, spell: RuleSpeller) -> JSON {
        let items: [JSON] = findings.map { finding in
            var members: [(String, JSON)] = [
                ("id", .string(finding.id)), ("severity", .string(finding.severity.rawValue)),
                ("table", .string(finding.table)), ("chain", .string(finding.chain)),
            ]
            if let family = finding.family { members.append(("family", .string(family.rawValue))) }
            func add(_ key: String, _ rule: Rule?, side: RuleSpeller.Side) {
                guard let rule else { return }
                members.append((key, .string(spell.text(rule, finding, side))))
                if let location = Self.location(rule.provenance) {
                    members.append(
                        (
                            key == "rule" ? "location" : key.replacingOccurrences(of: "rule", with: "location"),
                            .string(location)
                        ))
                }
            }
            add("rule", finding.rule, side: finding.id == "missing-rule" ? .expected : .actual)
            add("policy_rule", finding.expectedRule, side: .expected)
            add("other_rule", finding.otherRule, side: .expected)
            if let subject = finding.subject { members.append(("subject", .string(subject))) }
            if let origin = Self.location(finding.policyOrigin) {
                members.append(("policy_location", .string(origin)))
            }
            members += [("explanation", .string(finding.explanation)), ("fix", .string(finding.fix))]
            return .object(members)
        }
        return JSON.object([
            ("schema", .string("portcullis-audit/1")), ("source", .string(host.source)),
            ("mode", .string(policy == nil ? "risks" : "drift")), ("findings", .array(items)),
        ])
    }

    func printText(_ findings: [Finding], host: HostRules, spell: RuleSpeller) {
        guard !findings.isEmpty else {
            print("\(host.source): no findings")
            return
        }
        for finding in findings {
            let table =
                host.firewall == .nftables ? "\(finding.family?.rawValue ?? "") \(finding.table)" : finding.table
            var line = "\(finding.severity.rawValue): \(finding.id) in \(table)"
            if !finding.chain.isEmpty { line += "/\(finding.chain)" }
            if let rule = finding.rule {
                if let location = Self.location(rule.provenance) { line += " (\(location))" }
                line += "\n    \(spell.text(rule, finding, finding.id == "missing-rule" ? .expected : .actual))"
            }
            if let expected = finding.expectedRule {
                line += "\n    policy wants: \(spell.text(expected, finding, .expected))"
                if let origin = expected.provenance { line += "\n      from \(origin)" }
            }
            if let other = finding.otherRule {
                line += "\n    other rule: \(spell.text(other, finding, .expected))"
                if let origin = other.provenance { line += "\n      from \(origin)" }
            }
            if let subject = finding.subject { line += "\n    \(subject)" }
            if let origin = finding.policyOrigin { line += "\n      from \(origin)" }
            line += "\n    \(finding.explanation)\n    fix: \(finding.fix)"
            print(line)
        }
        print("\(findings.count) finding\(findings.count == 1 ? "" : "s")")
    }
}

/// Spells a rule the way the host's firewall prints it: `-A CHAIN ...` for iptables, nft
/// syntax for nftables (with opaque parts as read).
struct RuleSpeller {
    enum Side {
        case actual
        case expected
    }

    let firewall: Firewall
    let actual: Ruleset
    let expected: Ruleset

    func text(_ rule: Rule, _ finding: Finding, _ side: Side) -> String {
        let family = finding.family ?? .ip
        switch firewall {
        case .iptables:
            return (try? IptablesRenderer().renderRule(rule, chain: finding.chain, family: family))
                ?? "(a rule iptables cannot spell)"
        case .nftables:
            let ruleset = side == .actual ? actual : expected
            // The table's sets give set lookups their key types; opaque parts are added as read.
            let table = Table(
                family: family, name: finding.table, sets: ruleset.table(family, finding.table)?.sets ?? [])
            let modelled = Rule(
                rule.matches.filter {
                    if case .opaque = $0 { return false }
                    return true
                }, effects: rule.effects, opaqueAction(rule.action) ? nil : rule.action, comment: rule.comment)
            guard let line = try? NftTextRenderer().renderRule(modelled, in: table) else {
                return "(a rule nft cannot spell)"
            }
            var words = [line]
            let opaque = rule.matches.compactMap { match -> String? in
                if case .opaque(let text) = match { return text }
                return nil
            }
            words.insert(contentsOf: opaque, at: 0)
            if case .opaque(let text)? = rule.action { words.append(text) }
            return words.filter { !$0.isEmpty }.joined(separator: " ")
        }
    }

    func opaqueAction(_ action: Action?) -> Bool {
        if case .opaque? = action { return true }
        return false
    }
}

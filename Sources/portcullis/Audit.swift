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

            With a policy, compares what it compiles to with what the host holds, chain by chain:
            missing rules, unexpected rules, policies and orders that differ.

            The rules come from iptables-save output (--ruleset FILE, '-' for stdin) or from the
            live host (--live runs iptables-save in the current network namespace).
            Exit codes: 0 nothing found, 1 findings, 2 error.

            Examples:
              iptables-save | portcullis audit --ruleset -
              portcullis audit --live --format json
              portcullis audit policies/web-stack.policy --live
            """)

    @Argument(help: "A policy to compare the host with (optional).")
    var policy: String?

    @Option(help: "iptables-save output to audit ('-' for stdin).")
    var ruleset: String?

    @Flag(help: "Audit the rules of this host (the current network namespace).")
    var live = false

    @Option(help: "The layout to compare with (default: the policy's, else docker-20.10).")
    var layout: String?

    @Option(help: "text or json (schema: docs/audit.md).")
    var format = "text"

    func run() throws {
        guard (ruleset != nil) != live, format == "text" || format == "json" else {
            printError("error: give exactly one of --ruleset FILE and --live, and --format text or json")
            throw ExitCode(2)
        }
        let text: String
        let source: String
        if let ruleset {
            source = ruleset
            let data =
                ruleset == "-"
                ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: ruleset)
            guard let data else {
                printError("error: cannot read \(ruleset)")
                throw ExitCode(2)
            }
            text = String(decoding: data, as: UTF8.self)
        } else {
            source = "iptables-save (live)"
            let save = Tool.run(["iptables-save"])
            guard save.status == 0 else {
                printError("error: iptables-save failed: \(save.error)")
                throw ExitCode(2)
            }
            text = save.output
        }
        // nft JSON (`nft -j list ruleset`), or iptables-save text, where captures may hold an
        // ip6tables part after a '#### ip6tables' line.
        let parts = text.components(separatedBy: "#### ip6tables")
        var read = Ruleset()
        do {
            if text.drop(while: \.isWhitespace).first == "{" {
                read = try NftJSONReader(source: source).read(text)
            } else {
                for (index, part) in parts.prefix(2).enumerated() {
                    let (ruleset, warnings) = try IptablesSaveReader(family: index == 0 ? .ip : .ip6, source: source)
                        .read(
                            part)
                    read.tables += ruleset.tables
                    for warning in warnings { printError("warning: \(source): \(warning)") }
                }
            }
        } catch {
            printError("error: \(source): \(error)")
            throw ExitCode(2)
        }
        let renderer = IptablesRenderer()
        let ruleText: @Sendable (Rule, String, TableFamily) -> String = { rule, chain, family in
            (try? renderer.renderRule(rule, chain: chain, family: family)) ?? "(unrenderable rule)"
        }
        var findings: [Finding]
        if let policy {
            let compiler = Compiler()
            let (checked, sources) = try compiler.check(policy).get(orExit: fail)
            let (resolved, _) = try compiler.resolve(layout: layout, backend: "iptables", policy: checked).get(
                orExit: fail)
            switch resolved.lower(checked, for: .iptables) {
            case .success(let expected):
                findings = DriftAudit(expected: expected, actual: read, text: ruleText).findings()
            case .failure(let error): throw fail(.diagnostics(error.diagnostics, sources))
            }
        } else {
            findings = RiskAudit(ruleset: read).findings()
        }
        findings.sort { ($0.severity, $1.id) > ($1.severity, $0.id) }
        if format == "json" {
            let items: [JSON] = findings.map { finding in
                var members: [(String, JSON)] = [
                    ("id", .string(finding.id)), ("severity", .string(finding.severity.rawValue)),
                    ("table", .string(finding.table)), ("chain", .string(finding.chain)),
                ]
                if let rule = finding.rule {
                    members.append(("rule", .string(ruleText(rule, finding.chain, .ip))))
                    if let file = rule.provenance?.file, let line = rule.provenance?.line {
                        members.append(("location", .string("\(file):\(line)")))
                    }
                }
                members += [("explanation", .string(finding.explanation)), ("fix", .string(finding.fix))]
                return .object(members)
            }
            print(
                JSON.object([
                    ("schema", .string("portcullis-audit/1")), ("source", .string(source)),
                    ("mode", .string(policy == nil ? "risks" : "drift")), ("findings", .array(items)),
                ]).rendered(indent: 2))
        } else if findings.isEmpty {
            print("\(source): no findings")
        } else {
            for finding in findings {
                var line = "\(finding.severity.rawValue): \(finding.id) in \(finding.table)/\(finding.chain)"
                if let rule = finding.rule {
                    if let file = rule.provenance?.file, let number = rule.provenance?.line {
                        line += " (\(file):\(number))"
                    }
                    line += "\n    \(ruleText(rule, finding.chain, .ip))"
                }
                line += "\n    \(finding.explanation)\n    fix: \(finding.fix)"
                print(line)
            }
            print("\(findings.count) finding\(findings.count == 1 ? "" : "s")")
        }
        if !findings.isEmpty { throw ExitCode(1) }
    }
}

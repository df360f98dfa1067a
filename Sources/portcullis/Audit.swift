import ArgumentParser
import Foundation
import PortcullisCompiler

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Audit a host's rules: risks on any Docker-style host, or drift from a policy.",
        discussion: """
            Without a policy, reports risks, each with a severity, an explanation and the fix: \
            FORWARD policy ACCEPT, DOCKER-USER missing or not first, ports published on every \
            address with no source restriction, loopback publishes reachable from other hosts, \
            ICC open, DNAT to addresses no bridge holds, duplicated and shadowed rules.

            With a policy, compares what it compiles to with what the host holds, on meaning: \
            rules missing, unexpected or changed, orders that change a verdict, chains not \
            hooked, sets and map elements that differ, other tools' tables that can drop what the \
            policy accepts. Each finding names the table, the chain, the rule and the policy line. \
            With --alongside-docker, drift only for what Portcullis owns beside the daemon \
            (DOCKER-USER, or the portcullis-user tables), and the risks of the whole ruleset.

            The rules come from a file (--ruleset FILE, '-' for stdin: iptables-save output or \
            an 'nft -j list ruleset' document, told apart by content or by --from) or from the \
            live host (--live: iptables-save and ip6tables-save, plus the nftables tables of other \
            tools listed through libnftables; with --backend nftables, the whole ruleset through \
            libnftables), in the current network namespace. \
            Exit codes: 0 nothing found, 1 findings, 2 error.

            Examples:
              iptables-save | portcullis audit --ruleset -
              portcullis audit --live --format json
              portcullis audit policies/web-stack.policy --live
              portcullis audit policies/web-stack.policy --live --backend nftables
              portcullis audit host.policy --live --alongside-docker
              nft -j list ruleset > host.json; portcullis audit policies/web-stack.policy --ruleset host.json
            """)

    @Argument(help: "A policy to compare the host with (optional).", completion: .file(extensions: ["policy"]))
    var policy: String?

    @OptionGroup var host: HostRuleSource
    @OptionGroup var bound: InventoryOptions

    @Option(help: "The format of --ruleset (default: told by content).")
    var from: RulesetFormat?

    @Option(
        help:
            "With --live: read the host through iptables (iptables-save) or nftables (libnftables JSON). Default: the policy's backend, else iptables."
    )
    var backend: String?

    @Option(help: "The layout to compare with (default: the policy's, else docker-20.10).")
    var layout: String?

    @Option(help: "text or json (schema: docs/audit.md).")
    var format: PortcullisCompiler.ReportFormat = .text

    @Flag(help: ArgumentHelp(alongsideDockerHelp))
    var alongsideDocker = false

    func run() throws {
        try execute { application in
            guard from == nil || host.ruleset != nil else { throw CompileFailure.usage("--from goes with --ruleset") }
            let capture = try host.capture(format: from)
            let request = AuditRequest(
                policy: policy, capture: capture, backend: backend, layout: layout, inventory: try bound.source(),
                alongsideDocker: alongsideDocker)
            return try application.runAudit(request, format: format)
        }
    }
}

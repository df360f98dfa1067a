import ArgumentParser
import PortcullisCompiler
import PortcullisEvaluator

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Say whether a connection is accepted or dropped, and which rules decide it.",
        discussion: """
            Compiles the policy, then walks the first packet of the connection through the ruleset \
            as the kernel would: nat PREROUTING (DNAT of published ports), the routing decision, \
            filter FORWARD (or INPUT for the host itself) with its jumps and returns, then nat \
            POSTROUTING. Prints the verdict first, then every rule that matched, with the policy \
            line it came from.

            Endpoints: a container, a network (one of its free addresses), an address, \
            outside:ADDRESS (arriving on the host's external interface), or host (the host's own \
            address, --host-address).

            With --ruleset FILE (iptables-save output or nft JSON) or --live, the packet walks the \
            host's real rules instead of the compiled policy. The policy, when given, still names \
            the endpoints; without one, the networks and containers are imported from the rules \
            (containers named by address, as 'portcullis import' names them); if those do not \
            make a valid policy, explain reports why and stops. With --live, the host's own \
            addresses and routes decide where the packet goes.

            Examples:
              portcullis explain policies/web-stack.policy --from web --to api --port 8000/tcp
              portcullis explain policies/source-restricted.policy --from outside:203.0.113.9 --to host --port 8443/tcp
              portcullis explain policies/egress-only.policy --from builder --to 198.51.100.7 --port 443/tcp --format json
              iptables-save | portcullis explain --ruleset - --from outside:203.0.113.9 --to host --port 8080/tcp
              portcullis explain --live --backend nftables --from 172.17.0.2 --to 198.51.100.7 --port 443/tcp
            """)

    @Argument(help: "The policy file (optional with --ruleset or --live).", completion: .file(extensions: ["policy"]))
    var policy: String?

    @OptionGroup var host: HostRuleSource
    @OptionGroup var bound: InventoryOptions

    @Option(help: "Where the connection comes from.")
    var from: String

    @Option(help: "Where it goes.")
    var to: String

    @Option(help: "Destination port and protocol, e.g. 8080/tcp or 53/udp (none: a packet without ports).")
    var port: String?

    @Option(help: "The layout to evaluate (default: the policy's, else docker-20.10).")
    var layout: String?

    @Option(
        help: """
            The backend whose rules to evaluate (default: the policy's, else iptables): docker-29 writes \
            different rules through nftables, and the native layout exists only there.
            """)
    var backend: String?

    @Option(help: "The host's own address, as seen from outside.")
    var hostAddress = "192.0.2.1"

    @Option(help: "text or json.")
    var format: PortcullisCompiler.ReportFormat = .text

    @Option(help: "accept or drop: exit 1 when the verdict is the other one (for CI).")
    var expect: Verdict?

    func run() throws {
        try execute { application in
            let request = ExplainRequest(
                policy: policy, capture: host.isGiven ? try host.capture() : nil, from: from, to: to, port: port,
                layout: layout, backend: backend, hostAddress: hostAddress, inventory: try bound.source())
            return try application.runExplain(request, format: format, expect: expect)
        }
    }
}

extension Verdict: ExpressibleByArgument {}

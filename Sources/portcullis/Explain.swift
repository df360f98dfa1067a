import ArgumentParser
import Foundation
import JanssonKit
import PortcullisCompiler
import PortcullisEvaluator
import PortcullisIR
import PortcullisImport
import PortcullisKernel
import PortcullisNet
import PortcullisPolicy
import PortcullisRender
import PortcullisSyntax

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Say whether a connection is accepted or dropped, and which rules decide it.",
        discussion: """
            Compiles the policy, then walks the first packet of the connection through the ruleset
            as the kernel would: nat PREROUTING (DNAT of published ports), the routing decision,
            filter FORWARD (or INPUT for the host itself) with its jumps and returns, then nat
            POSTROUTING. Prints the verdict first, then every rule that matched, with the policy
            line it came from.

            Endpoints: a container, a network (one of its free addresses), an address,
            outside:ADDRESS (arriving on the host's external interface), or host (the host's own
            address, --host-address).

            With --ruleset FILE (iptables-save output or nft JSON) or --live, the packet walks the
            host's real rules instead of the compiled policy. The policy, when given, still names
            the endpoints; without one, the networks and containers are imported from the rules
            (containers named by address, as 'portcullis import' names them); if those do not
            make a valid policy, explain reports why and stops. With --live, the host's own
            addresses and routes decide where the packet goes.

            Examples:
              portcullis explain policies/web-stack.policy --from web --to api --port 8000/tcp
              portcullis explain policies/source-restricted.policy --from outside:203.0.113.9 --to host --port 8443/tcp
              portcullis explain policies/egress-only.policy --from builder --to 198.51.100.7 --port 443/tcp --format json
              iptables-save | portcullis explain --ruleset - --from outside:203.0.113.9 --to host --port 8080/tcp
              portcullis explain --live --backend nftables --from 172.17.0.2 --to 198.51.100.7 --port 443/tcp
            """)

    @Argument(help: "The policy file (optional with --ruleset or --live).")
    var policy: String?

    @OptionGroup var host: HostRuleSource

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
    var format = "text"

    func run() throws {
        let compiler = Compiler()
        var checked: Policy
        let ruleset: Ruleset
        let firewall: Firewall
        var routing: HostRouting?
        if host.isGiven {
            guard host.ruleset == nil || !host.live else {
                printError("error: give one of --ruleset FILE and --live")
                throw ExitCode(2)
            }
            var model: Policy?
            if let policy { model = try compiler.check(policy).get(orExit: fail).0 }
            let backendName = backend ?? model?.host.backend ?? Backend.iptables.rawValue
            guard let liveBackend = Backend(rawValue: backendName) else {
                printError("error: unknown backend '\(backendName)'; backends are: iptables, nftables, nftables-json")
                throw ExitCode(2)
            }
            let read = try host.read(liveFirewall: liveBackend.firewall)
            (ruleset, firewall) = (read.ruleset, read.firewall)
            checked = try model ?? importedPolicy(read)
            if host.live { routing = try liveRouting() }
        } else {
            guard let policy else {
                printError("error: give a policy, or the host's rules with --ruleset FILE or --live")
                throw ExitCode(2)
            }
            let sources: SourceStore
            (checked, sources) = try compiler.check(policy).get(orExit: fail)
            let (resolvedLayout, resolvedBackend) = try compiler.resolve(
                layout: layout, backend: backend, policy: checked
            ).get(orExit: fail)
            switch resolvedLayout.lower(checked, for: resolvedBackend.firewall) {
            case .success(let lowered): ruleset = lowered
            case .failure(let error): throw fail(.diagnostics(error.diagnostics, sources))
            }
            firewall = resolvedBackend.firewall
        }
        guard let host = IPAddress(hostAddress), format == "text" || format == "json" else {
            printError("error: --host-address must be an address and --format text or json")
            throw ExitCode(2)
        }
        let explanation = Explanation(policy: checked, hostAddress: host, routing: routing)
        let source: Explanation.Endpoint
        let destination: Explanation.Endpoint
        do {
            destination = try explanation.endpoint(to, peer: from)
            source = try explanation.endpoint(from, peer: to, toward: destination.address)
        } catch {
            printError("error: \(error)")
            throw ExitCode(2)
        }
        var transport: TransportProtocol?
        var destinationPort: UInt16 = 0
        if let port {
            let parts = port.split(separator: "/")
            guard let number = UInt16(parts[0]), number > 0,
                let proto = TransportProtocol(rawValue: parts.count > 1 ? String(parts[1]) : "tcp")
            else {
                printError("error: --port must look like 8080/tcp or 53/udp")
                throw ExitCode(2)
            }
            transport = proto
            destinationPort = number
        }
        let packet = Packet(
            inputInterface: source.interface, source: source.address, destination: destination.address,
            transport: transport,
            destinationPort: destinationPort)
        let result = Evaluator(ruleset: ruleset, routing: explanation.routing).evaluate(packet)
        // Rules are quoted in the syntax of the firewall they were built for.
        func ruleText(_ step: TraceStep) -> String {
            guard let rule = step.rule else { return step.outcome }
            let text: String?
            if firewall == .iptables {
                text = try? IptablesRenderer().renderRule(rule, chain: step.chain, family: .ip)
            } else if let table = ruleset.tables.first(where: { $0.name == step.table }) {
                let nft = NftTextRenderer()
                text = (try? nft.renderRule(rule, in: table)).map { rule in
                    guard let element = step.element, let elementText = try? nft.renderElement(element) else {
                        return rule
                    }
                    return rule + " (element " + elementText + ")"
                }
            } else {
                text = nil
            }
            return text ?? step.outcome
        }
        let what = "\(source.description) -> \(destination.description)\(port.map { " port \($0)" } ?? "")"
        if format == "json" {
            var nat: [(String, JSON)] = []
            if let (address, translatedPort) = result.translatedDestination {
                nat.append(("destination", .string("\(address)" + (translatedPort > 0 ? ":\(translatedPort)" : ""))))
            }
            if let translated = result.translatedSource { nat.append(("source", .string(translated))) }
            let trace: [JSON] = result.trace.map { step in
                var members: [(String, JSON)] = [
                    ("table", .string(step.table)), ("chain", .string(step.chain)), ("rule", .string(ruleText(step))),
                    ("outcome", .string(step.outcome)),
                ]
                if let provenance = step.provenance {
                    members.append(("statement", .string(provenance.statement)))
                    if let file = provenance.file, let line = provenance.line {
                        members.append(("location", .string("\(file):\(line)")))
                    }
                }
                return .object(members)
            }
            let document = JSON.object([
                ("verdict", .string(result.verdict.rawValue)), ("connection", .string(what)),
                ("path", .string(result.path.rawValue)), ("nat", .object(nat)), ("trace", .array(trace)),
            ])
            print(document.rendered(indent: 2))
            return
        }
        var headline = "\(result.verdict.rawValue): \(what)"
        if let (address, translatedPort) = result.translatedDestination {
            headline += ", forwarded to \(address)" + (translatedPort > 0 ? ":\(translatedPort)" : "")
        }
        if let interface = result.outputInterface { headline += " out of \(interface)" }
        if let translated = result.translatedSource { headline += ", source rewritten to \(translated)" }
        print(headline)
        for step in result.trace {
            var line = "  \(step.table) \(step.chain): \(ruleText(step))"
            if let provenance = step.provenance { line += "\n      from \(provenance)" }
            print(line)
        }
    }

    /// Networks and containers as `portcullis import` reads them from the host's rules (Docker's
    /// or the native layout's), to name endpoints and route packets; other rules give a host
    /// without networks. The imported host reaches the checker as a syntax tree; if the checker
    /// refuses it, that is reported with the lines of the policy `import` would write.
    func importedPolicy(_ host: HostRules) throws -> Policy {
        let path = "rules imported from \(host.source)"
        let imported = HostImport.detectLayout(of: host.ruleset).flatMap {
            HostImport.importHost(from: host.ruleset, as: $0)?.host.syntax(path: path)
        }
        let (text, placed) = Printer.printPlaced(imported ?? SyntaxFile(path: path, statements: []))
        let loaded = LoadedPolicy(placed, text: text)
        switch Checker.check(loaded) {
        case .success(let policy):
            return policy
        case .failure(let error):
            printError(
                "error: the networks and containers imported from \(host.source) do not make a valid policy; name a policy for the endpoints"
            )
            throw fail(.diagnostics(error.diagnostics, loaded.sources))
        }
    }

    /// This host's own addresses and routes (`ip -j address`, `ip -j route`), for `--live`.
    func liveRouting() throws -> HostRouting {
        let addresses = Tool.run(["ip", "-j", "address", "show"])
        let routes = Tool.run(["ip", "-j", "route", "show"])
        guard addresses.status == 0, routes.status == 0, let interfaces = try? JSON.parse(addresses.output).arrayValue,
            let table = try? JSON.parse(routes.output).arrayValue
        else {
            printError("error: cannot read this host's addresses and routes with 'ip -j'")
            throw ExitCode(2)
        }
        var local: Set<IPAddress> = []
        for interface in interfaces {
            for info in interface["addr_info"]?.arrayValue ?? [] {
                if let address = info["local"]?.stringValue.flatMap(IPAddress.init) { local.insert(address) }
            }
        }
        var connected: [(prefix: IPPrefix, interface: String)] = []
        var uplink = "eth0"
        for route in table {
            guard let destination = route["dst"]?.stringValue, let device = route["dev"]?.stringValue else { continue }
            if destination == "default" {
                uplink = device
            } else if case .success(let prefix) = IPPrefix.parse(Substring(destination)) {
                connected.append((prefix, device))
            }
        }
        return HostRouting(localAddresses: local, routes: connected, defaultInterface: uplink)
    }
}

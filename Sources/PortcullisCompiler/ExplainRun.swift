import JanssonKit
import PortcullisEvaluator
import PortcullisIR
import PortcullisImport
import PortcullisKernel
import PortcullisNet
import PortcullisPolicy
import PortcullisRender
import PortcullisSyntax

/// What `explain` is asked: a connection, and the rules to walk it through (the policy's
/// compiled rules, or a host's).
public struct ExplainRequest: Sendable {
    /// The policy; optional when the host's rules are given (then its networks are imported).
    public var policy: String?
    /// The host's rules; nil: the policy compiled with `layout` and `backend`.
    public var capture: HostCapture?
    public var from: String
    public var to: String
    /// `PORT/PROTOCOL`; nil: a packet without ports.
    public var port: String?
    public var layout: String?
    public var backend: String?
    /// The host's own address, as seen from outside.
    public var hostAddress: String
    /// The host the policy is bound to, when it leaves addresses and publishes to it.
    public var inventory: InventorySource?

    public init(
        policy: String? = nil, capture: HostCapture? = nil, from: String, to: String, port: String? = nil,
        layout: String? = nil, backend: String? = nil, hostAddress: String = "192.0.2.1",
        inventory: InventorySource? = nil
    ) {
        self.inventory = inventory
        self.policy = policy
        self.capture = capture
        self.from = from
        self.to = to
        self.port = port
        self.layout = layout
        self.backend = backend
        self.hostAddress = hostAddress
    }
}

/// A connection walked through a ruleset: the verdict, and every rule that decided it.
public struct ExplainReport: Sendable {
    public let evaluation: Evaluation
    /// `SOURCE -> DESTINATION [port PORT]`, as the endpoints were resolved.
    public let connection: String
    let ruleset: Ruleset
    let firewall: Firewall

    /// A step's rule in the syntax of the firewall it was built for, with the set element that
    /// matched; the step's outcome when there is no rule or no words for it.
    public func ruleText(_ step: TraceStep) -> String {
        guard let rule = step.rule else { return step.outcome }
        let table = ruleset.tables.first { $0.name == step.table }
        guard let text = RuleSpeller(firewall: firewall).text(rule, chain: step.chain, family: .ip, table: table)
        else { return step.outcome }
        guard firewall == .nftables, let element = step.element,
            let elementText = try? NftTextRenderer().renderElement(element)
        else { return text }
        return text + " (element " + elementText + ")"
    }

    public func rendered(_ format: ReportFormat) -> String {
        switch format {
        case .json: json().rendered(indent: 2) + "\n"
        case .text: text()
        }
    }

    func json() -> JSON {
        var nat: [(String, JSON)] = []
        if let (address, port) = evaluation.translatedDestination {
            nat.append(("destination", .string("\(address)" + (port > 0 ? ":\(port)" : ""))))
        }
        if let translated = evaluation.translatedSource { nat.append(("source", .string(translated))) }
        let trace: [JSON] = evaluation.trace.map { step in
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
        return JSON.object([
            ("verdict", .string(evaluation.verdict.rawValue)), ("connection", .string(connection)),
            ("path", .string(evaluation.path.rawValue)), ("nat", .object(nat)), ("trace", .array(trace)),
        ])
    }

    func text() -> String {
        var headline = "\(evaluation.verdict.rawValue): \(connection)"
        if let (address, port) = evaluation.translatedDestination {
            headline += ", forwarded to \(address)" + (port > 0 ? ":\(port)" : "")
        }
        if let interface = evaluation.outputInterface { headline += " out of \(interface)" }
        if let translated = evaluation.translatedSource { headline += ", source rewritten to \(translated)" }
        return
            ([headline]
            + evaluation.trace.map { step in
                "  \(step.table) \(step.chain): \(ruleText(step))"
                    + (step.provenance.map { "\n      from \($0)" } ?? "")
            }).map { $0 + "\n" }.joined()
    }
}

extension Application {
    /// Walks the connection's first packet through the rules as the kernel would.
    public func explain(_ request: ExplainRequest) throws -> ExplainReport {
        let (policy, ruleset, firewall, routing) = try explainedRules(request)
        guard let hostAddress = IPAddress(request.hostAddress) else {
            throw CompileFailure.usage("--host-address must be an address")
        }
        let explanation = Explanation(policy: policy, hostAddress: hostAddress, routing: routing)
        let source: Explanation.Endpoint
        let destination: Explanation.Endpoint
        do {
            let family = Explanation.family(from: request.from, to: request.to)
            destination = try explanation.endpoint(request.to, peer: request.from, family: family)
            source = try explanation.endpoint(
                request.from, peer: request.to, toward: destination.address, family: family)
        } catch {
            throw CompileFailure.usage("\(error)")
        }
        let (transport, port) = try Self.port(request.port)
        let packet = Packet(
            inputInterface: source.interface, source: source.address, destination: destination.address,
            transport: transport, destinationPort: port, locallyGenerated: request.from == "host")
        return ExplainReport(
            evaluation: Evaluator(ruleset: ruleset, routing: explanation.routing).evaluate(packet),
            connection: "\(source.description) -> \(destination.description)"
                + (request.port.map { " port \($0)" } ?? ""),
            ruleset: ruleset, firewall: firewall)
    }

    /// Explains a connection; with `expect`, a different verdict is a finding (exit 1), so a
    /// CI job can assert what the rules do.
    public func runExplain(_ request: ExplainRequest, format: ReportFormat, expect: Verdict? = nil) throws
        -> RunStatus
    {
        let report = try explain(request)
        console.output(report.rendered(format))
        guard let expect, expect != report.evaluation.verdict else { return .clean }
        console.note("error: expected \(expect.rawValue), but the rules \(report.evaluation.verdict.rawValue) it")
        return .findings
    }

    /// The policy that names the endpoints, the rules to walk, and a live host's own routing.
    func explainedRules(_ request: ExplainRequest) throws -> (Policy, Ruleset, Firewall, HostRouting?) {
        let checked = try request.policy.map { try check($0, inventory: request.inventory) }
        guard let capture = request.capture else {
            guard let (policy, sources) = checked else {
                throw CompileFailure.usage("give a policy, or the host's rules with --ruleset FILE or --live")
            }
            let (ruleset, backend) = try compiler.lower(
                policy, sources: sources, layout: request.layout, backend: request.backend
            ).get()
            return (policy, ruleset, backend.firewall, nil)
        }
        let host = try read(capture, liveFirewall: try liveFirewall(backend: request.backend, policy: checked?.0))
        let policy = try checked?.0 ?? importedPolicy(host)
        let routing = capture.isLive ? try Self.liveRouting() : nil
        return (policy, host.ruleset, host.firewall, routing)
    }

    /// `PORT/PROTOCOL` (protocol tcp if left out); no ports at all for nil.
    static func port(_ text: String?) throws -> (TransportProtocol?, UInt16) {
        guard let text else { return (nil, 0) }
        let parts = text.split(separator: "/")
        guard let number = parts.first.flatMap({ UInt16($0) }), number > 0,
            let transport = TransportProtocol(rawValue: parts.count > 1 ? String(parts[1]) : "tcp")
        else { throw CompileFailure.usage("--port must look like 8080/tcp or 53/udp") }
        return (transport, number)
    }

    /// Networks and containers as `import` reads them from the host's rules (Docker's or the
    /// native layout's), to name endpoints and route packets; other rules give a host without
    /// networks. The imported host reaches the checker as a syntax tree; if the checker refuses
    /// it, that is reported with the lines of the policy `import` would write.
    func importedPolicy(_ host: CapturedHost) throws -> Policy {
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
            console.note(
                "error: the networks and containers imported from \(host.source) do not make a valid policy; name a policy for the endpoints"
            )
            throw CompileFailure.diagnostics(error.diagnostics, loaded.sources)
        }
    }

    /// This host's own addresses and routes (`ip -j address`, `ip -j route`), for `--live`.
    static func liveRouting() throws -> HostRouting {
        let addresses = Tool.run(["ip", "-j", "address", "show"])
        let routes = Tool.run(["ip", "-j", "route", "show"])
        guard addresses.status == 0, routes.status == 0, let interfaces = try? JSON.parse(addresses.output).arrayValue,
            let table = try? JSON.parse(routes.output).arrayValue
        else { throw CompileFailure.usage("cannot read this host's addresses and routes with 'ip -j'") }
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

extension HostCapture {
    var isLive: Bool {
        if case .live = self { return true }
        return false
    }
}

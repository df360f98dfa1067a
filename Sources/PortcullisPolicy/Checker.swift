import PortcullisNet
import PortcullisSyntax

/// Turns a loaded syntax tree into a checked `Policy`, or reports every problem it finds.
///
/// Names are global (a flow may name a container declared further down), but creation order
/// is file order: a container can only attach to a network declared above it, as Docker can
/// only start a container on a network that already exists.
///
/// One job per file: names and order here, then values, the host block, networks, lists,
/// containers, publishes and rules (`Checker+*.swift`); what the Docker daemon decides about
/// publishes is its own component (`DockerDaemon`, Daemon/).
public struct Checker {
    public static func check(_ loaded: LoadedPolicy) -> Result<Policy, DiagnosticError> {
        var checker = Checker()
        let policy = checker.run(loaded.statements)
        if checker.diagnostics.contains(where: { $0.severity == .error }) {
            return .failure(DiagnosticError(checker.diagnostics))
        }
        return .success(policy)
    }

    var diagnostics: [Diagnostic] = []

    mutating func error(_ message: String, at range: SourceRange, hint: String? = nil) {
        diagnostics.append(Diagnostic(message, at: range, hint: hint))
    }

    mutating func warning(_ message: String, at range: SourceRange, hint: String? = nil) {
        diagnostics.append(Diagnostic(message, at: range, hint: hint, severity: .warning))
    }

    // MARK: - What has been declared so far

    var host = HostSettings()
    var networks: [Network] = []
    var containers: [Container] = []
    /// Positions in `containers` by name: rules look containers up by the thousand.
    var containerPositions: [String: Int] = [:]
    var groups: [String: [String]] = [:]
    var addressSets: [String: [IPPrefix]] = [:]
    var services: [String: [PortSpec]] = [:]
    /// Declared endpoint names (containers, groups, networks share one namespace).
    var endpointKinds: [String: (kind: String, at: SourceRange)] = [:]
    var listNames: [String: SourceRange] = [:]
    /// Networks and containers in the order the files declare them.
    var declarationOrder: [CreationEvent] = []
    /// Positions in `networks` by name (the first of a duplicated name).
    var networkPositions: [String: Int] = [:]
    /// The network that took each bridge first.
    var bridgeOwners: [String: String] = [:]
    /// The subnets declared so far, per family, for overlap checks that stay linear.
    var subnetOverlaps: [IPFamily: SubnetOverlaps] = [:]
    /// The container holding each attached address.
    var usedAddresses: [IPAddress: String] = [:]
    /// How many unknown names have had a suggestion (see `suggestionLimit`).
    var suggestionsMade = 0

    func network(_ name: String) -> Network? { networkPositions[name].map { networks[$0] } }

    // MARK: - Order of the checks

    private mutating func run(_ statements: [Statement]) -> Policy {
        declareNames(statements)
        checkHostBlocks(statements)
        var deferredRules: [Setting] = []
        var deferredContainers: [(Block, Int)] = []
        var deferredLists: [ListBlock] = []
        for statement in statements {
            switch statement {
            case .include:
                break  // expanded by the loader
            case .block(let block):
                switch block.kind {
                case .host:
                    break  // checked first
                case .network:
                    checkNetwork(block)
                case .container:
                    // Checked once every network is known (for "declared later" hints), in order.
                    deferredContainers.append((block, networks.count))
                }
            case .list(let list):
                deferredLists.append(list)
            case .rule(let rule):
                deferredRules.append(rule)
            }
        }
        for list in deferredLists where list.kind != .group { checkList(list) }
        for list in deferredLists where list.kind == .group { checkList(list) }
        for (block, networksDeclaredBefore) in deferredContainers {
            checkContainer(block, networksDeclaredBefore: networksDeclaredBefore)
        }
        warnAboutDaemonFlagsWithoutDefaultNetwork()
        startContainers()
        let rules = deferredRules.compactMap { checkRule($0) }
        let defaultBridges = networks.filter(\.isDefaultBridge)
        return Policy(
            host: host, networks: defaultBridges + networks.filter { !$0.isDefaultBridge }, containers: containers,
            groups: groups, addressSets: addressSets, services: services, rules: rules,
            events: creationEvents(defaultBridges: defaultBridges),
            warnings: diagnostics.filter { $0.severity == .warning })
    }

    /// The host block first: the default network's settings depend on it wherever it stands.
    private mutating func checkHostBlocks(_ statements: [Statement]) {
        var hostSeen: SourceRange?
        for case .block(let block) in statements where block.kind == .host {
            if let first = hostSeen {
                error(
                    "second host block", at: block.keyword.range,
                    hint: "merge it with the host block at line \(first.start.line)")
            }
            hostSeen = block.keyword.range
            checkHost(block)
        }
    }

    /// What the daemon refuses when it starts the containers is an error in the policy. The
    /// host ports it chooses (in every era, for the first family a publish binds) complete the
    /// publishes; what differs between eras, layouts ask `DockerDaemon`.
    private mutating func startContainers() {
        let lookup = { [networks, networkPositions] (name: String) in networkPositions[name].map { networks[$0] } }
        let allocation = PortAllocator.allocate(containers, host: host, network: lookup)
        diagnostics += allocation.diagnostics
        for (position, port) in allocation.hostPorts {
            containers[position.container].publishes[position.publish].hostPorts = PortRange(port)
        }
        diagnostics += PublishConflicts.find(in: containers, host: host, network: lookup)
    }

    /// Docker creates its default bridge when the daemon starts, before anything else.
    private func creationEvents(defaultBridges: [Network]) -> [CreationEvent] {
        defaultBridges.map { CreationEvent.createNetwork($0.name) }
            + declarationOrder.filter {
                if case .createNetwork(let name) = $0 { return !defaultBridges.contains { $0.name == name } }
                return true
            }
    }

    // MARK: - Names

    private mutating func declareNames(_ statements: [Statement]) {
        for statement in statements {
            switch statement {
            case .block(let block) where block.kind != .host:
                guard let name = name(of: block) else { continue }
                declareEndpoint(name, kind: block.kind.rawValue)
                declarationOrder.append(
                    block.kind == .network ? .createNetwork(name.value) : .startContainer(name.value))
            case .list(let list) where list.kind == .group:
                declareEndpoint(list.name, kind: "group")
            case .list(let list):
                declareList(list)
            default:
                break
            }
        }
    }

    private mutating func declareEndpoint(_ name: Located<String>, kind: String) {
        if let problem = Checker.nameProblem(name.value) {
            error("invalid \(kind) name '\(name.value)': \(problem)", at: name.range, hint: Checker.nameHint)
        }
        if let existing = endpointKinds[name.value] {
            error(
                "duplicate name '\(name.value)': already declared as a \(existing.kind) at line \(existing.at.start.line)",
                at: name.range, hint: "containers, groups and networks share one namespace; rename one")
            return
        }
        endpointKinds[name.value] = (kind, name.range)
    }

    /// Address sets and services: a namespace per kind.
    private mutating func declareList(_ list: ListBlock) {
        let key = "\(list.kind.rawValue) \(list.name.value)"
        if let problem = Checker.nameProblem(list.name.value) {
            error(
                "invalid \(list.kind.rawValue) name '\(list.name.value)': \(problem)", at: list.name.range,
                hint: Checker.nameHint)
        }
        if let existing = listNames[key] {
            error(
                "duplicate \(list.kind.rawValue) '\(list.name.value)': already declared at line \(existing.start.line)",
                at: list.name.range)
        } else {
            listNames[key] = list.name.range
        }
    }

    static let nameHint = "names start with a letter and use letters, digits, '-', '_' and '.' (at most 64)"

    /// Names reach ruleset comments, so they are kept to a conservative alphabet.
    static func nameProblem(_ name: String) -> String? {
        guard let first = name.first, first.isASCII, first.isLetter else { return "must start with a letter" }
        if name.count > 64 { return "longer than 64 characters" }
        if let bad = name.first(where: { !($0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0))) }) {
            return "contains '\(bad)'"
        }
        if ["any", "outside", "host"].contains(name) { return "'\(name)' is a reserved word" }
        return nil
    }
}

import PortcullisNet

/// A checked policy: every name resolved, every address parsed and consistent. Layouts read
/// only this; nothing here can fail any more.
public struct Policy: Sendable {
    public var host: HostSettings
    /// Networks in creation order (the daemon's default bridge first, then declaration order).
    public let networks: [Network]
    /// Containers in start order.
    public let containers: [Container]
    public var groups: [String: [String]]
    public var addressSets: [String: [IPPrefix]]
    public var services: [String: [PortSpec]]
    /// Flows and egress rules in declaration order.
    public var rules: [PolicyRule]
    /// The order in which the daemon would see networks created and containers started.
    public var events: [CreationEvent]
    /// What the checker warns about in a policy it accepts: settings Docker ignores.
    public var warnings: [Diagnostic]
    /// Positions by name, so lookups stay constant-time on hosts with thousands of containers.
    private let networkIndex: [String: Int]
    private let containerIndex: [String: Int]

    init(
        host: HostSettings, networks: [Network], containers: [Container], groups: [String: [String]],
        addressSets: [String: [IPPrefix]], services: [String: [PortSpec]], rules: [PolicyRule], events: [CreationEvent],
        warnings: [Diagnostic] = []
    ) {
        self.host = host
        self.networks = networks
        self.containers = containers
        self.groups = groups
        self.addressSets = addressSets
        self.services = services
        self.rules = rules
        self.events = events
        self.warnings = warnings
        networkIndex = Dictionary(networks.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        containerIndex = Dictionary(
            containers.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public func network(_ name: String) -> Network? { networkIndex[name].map { networks[$0] } }
    public func container(_ name: String) -> Container? { containerIndex[name].map { containers[$0] } }
}

public enum CreationEvent: Sendable, Hashable {
    case createNetwork(String)
    case startContainer(String)
}

/// Where a model element was declared: for provenance in the IR.
public struct Origin: Sendable, Hashable {
    public let statement: String
    public let location: SourceLocation

    public init(_ statement: String, at location: SourceLocation) {
        self.statement = statement
        self.location = location
    }
}

public enum Toggle: Sendable, Hashable {
    case on
    case off
}

public struct HostSettings: Sendable, Hashable {
    /// Layout and backend named in the policy; the command line may override them.
    public var layout: String?
    public var backend: String?
    public var userlandProxy = true
    /// The daemon's `--icc`: it configures Docker's default network (bridge `docker0`) only;
    /// `docker network create` networks keep ICC on unless created with their own
    /// `enable_icc` option.
    public var icc = true
    /// The daemon's `--ip-masq`: like `icc`, it configures the default network only.
    public var ipMasquerade = true
    /// nil: the layout's Docker default (ACCEPT for 1.5, DROP from 1.13 on).
    public var forwardPolicyDrop: Bool?
    public var externalInterfaces: [String] = []
    /// Where Docker picks host ports for `publish-all` and `publish PORT/PROTO`.
    public var ephemeralPorts = PortRange(32768, 60999)
    public var logDrops: LogSettings?
    public var countDrops = false
    /// Docker's `--ip6tables` (experimental and off in 20.10): whether the daemon writes
    /// ip6tables rules for its IPv6 networks. Only the docker-20.10 layout depends on it; Docker
    /// 28 and 29 write them whatever it says (on by default since 27).
    public var ip6tables = false
    /// `unknown-containers drop`: routed traffic from or to an address on a network's subnet
    /// that is neither a container the policy knows nor the gateway is dropped once the
    /// policy's own rules have accepted nothing for it, so that a container started since the
    /// rules were written gets nothing the policy denies until they know it (`watch`).
    public var unknownContainersDrop = false
    /// Where each setting was written, for layouts that cannot honour one.
    public var locations: [String: SourceLocation] = [:]

    public init() {}
}

public struct LogSettings: Sendable, Hashable {
    public typealias Unit = TimeUnit

    /// At most `rateCount` log lines per `rateUnit`; Portcullis always rate-limits logging so a
    /// flood of dropped packets cannot flood the kernel log.
    public var rateCount: Int
    public var rateUnit: Unit
    public var prefix: String
}

/// How Docker connects a bridge network's IPv4 side to the outside
/// (`com.docker.network.bridge.gateway_mode_ipv4`).
public enum GatewayMode: String, Sendable, Hashable, CaseIterable {
    /// Masquerade outgoing traffic, DNAT published ports, drop everything else routed in.
    case nat
    /// No NAT: containers are reachable at their own addresses on published ports (and ICMP);
    /// nothing is masqueraded and no host port is mapped.
    case routed
    /// NAT as `nat`, but anything routed to a container's address is accepted.
    case natUnprotected = "nat-unprotected"
}

public struct Network: Sendable, Hashable {
    public var name: String
    public var bridge: String
    public var subnet4: IPPrefix?
    public var gateway4: IPAddress?
    public var subnet6: IPPrefix?
    public var gateway6: IPAddress?
    public var icc: Bool
    public var `internal`: Bool
    public var masquerade: Bool
    /// The host address publishes bind to when they name none (`0.0.0.0` when nil).
    public var hostBinding: IPAddress?
    /// The IPv4 gateway mode; IPv6 is always `nat`.
    public var gatewayMode4: GatewayMode = .nat
    /// Where `gateway-mode` was written, if it was.
    public var gatewayModeOrigin: Origin?
    public var origin: Origin

    /// Docker's default network: created at daemon start, before any user network.
    public var isDefaultBridge: Bool { bridge == "docker0" }
}

public struct PortSpec: Sendable, Hashable, CustomStringConvertible {
    public var ports: PortRange
    public var transport: TransportProtocol

    public init(_ ports: PortRange, _ transport: TransportProtocol) {
        self.ports = ports
        self.transport = transport
    }

    public var description: String { "\(ports)/\(transport.rawValue)" }
}

public struct Attachment: Sendable, Hashable {
    public var network: String
    public var address4: IPAddress?
    public var address6: IPAddress?
    public var mac: String?
}

public struct Publish: Sendable, Hashable {
    /// nil: the network's host binding, or all addresses.
    public var hostAddress: IPAddress?
    /// For a daemon-chosen port, the one every daemon era hands out on the first family it
    /// binds (see `DockerDaemon`).
    public var hostPorts: PortRange
    /// True when the policy named no host port and the daemon picked one (`publish-all`,
    /// `publish 80/tcp`); Docker orders such bindings as if their host port were 0.
    public var hostPortIsEphemeral: Bool
    public var containerPorts: PortRange
    public var transport: TransportProtocol
    /// Who may connect from outside; empty means anyone (Docker's behaviour).
    public var allowedSources: [IPPrefix]
    /// Names of the address sets and literals the allow-list was written with, for comments.
    public var allowedSourcesText: String
    public var origin: Origin
    /// Added by `publish-all` for an exposed port without a binding of its own.
    public var fromPublishAll = false
    /// The port the daemon chose, where the policy says it (`chosen PORT`): the allocator's
    /// counter had moved on from what the policy's containers leave it at (containers since
    /// stopped or removed, a network connected later), so it hands this one out instead.
    public var chosenPort: UInt16?
}

public struct Container: Sendable, Hashable {
    public var name: String
    /// In the order given; Docker connects the first at start and the rest after.
    public var attachments: [Attachment]
    /// The `publish` lines in order, then what `publish-all` adds.
    public var publishes: [Publish]
    /// The ports the image exposes (`expose`), published by `publish-all`.
    public var exposedPorts: [PortSpec] = []
    /// The container port the first `publish` or `expose` line names, a single port: where
    /// Docker 20.10 is taken to start iterating a container's ports (`DockerPortOrder`).
    public var firstNamedPort: PortSpec?
    public var origin: Origin

    /// The endpoint that provides the default gateway once the first `count` attachments are
    /// connected, where Docker programs the port mappings: libnetwork's endpoint order
    /// (`Endpoint.Less`) puts non-internal networks first, then those with an IPv6 gateway (an
    /// IPv6 subnet), then orders by network name.
    public func gatewayAttachment(afterConnecting count: Int? = nil, network: (String) -> Network?) -> (
        Attachment, Network
    )? {
        attachments.prefix(count ?? attachments.count).compactMap { attachment in
            network(attachment.network).flatMap { $0.internal ? nil : (attachment, $0) }
        }.min { ($0.1.subnet6 == nil ? 1 : 0, $0.1.name) < ($1.1.subnet6 == nil ? 1 : 0, $1.1.name) }
    }
}

/// One end of a flow, resolved to what rules can match.
public enum Endpoint: Sendable, Hashable {
    case container(String)
    case network(String)

    public var name: String {
        switch self {
        case .container(let n), .network(let n): n
        }
    }
}

public enum EgressDestination: Sendable, Hashable {
    case anywhere
    case prefixes([IPPrefix])
}

public struct PolicyRule: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case allow
        case deny
        case egress
    }

    public var kind: Kind
    /// Expanded: a group becomes its containers, in group order.
    public var sources: [Endpoint]
    /// For allow/deny.
    public var destinations: [Endpoint]
    /// For egress.
    public var egressDestination: EgressDestination
    /// Empty: all traffic.
    public var ports: [PortSpec]
    /// The rule as written, e.g. "allow web -> api port 8000/tcp", for comments and traces.
    public var text: String
    public var origin: Origin
    /// The network a side is scoped to (`app@edge`): only its containers' addresses there.
    /// Unscoped, an `allow` keeps to the networks its two ends share (see `UserRules.pairs`).
    public var sourceScope: String? = nil
    public var destinationScope: String? = nil
}

import PortcullisNet

/// What a Docker host runs, as far as its firewall is concerned: the daemon, its bridge
/// networks in creation order and its running containers in start order. It is read from the
/// Engine API, from `docker inspect` output or from Ansible facts, written and read back as a
/// versioned snapshot (docs/inventory.md), and imported as a policy. Values are parsed when
/// read, so everything downstream can trust them.
public struct Inventory: Sendable, Hashable {
    /// The snapshot format's version, written as `portcullis-inventory`.
    public static let formatVersion = 1

    /// Where it was read: `docker` (a daemon), `docker-inspect` or `ansible-facts` (files).
    public var source: String
    /// Nil when the source does not say (inspect output and facts carry no daemon).
    public var daemon: Daemon?
    /// Bridge networks, the default bridge first, then in creation order.
    public var networks: [Network] = []
    /// Running containers in start order.
    public var containers: [Container] = []

    public init(source: String, daemon: Daemon? = nil, networks: [Network] = [], containers: [Container] = []) {
        self.source = source
        self.daemon = daemon
        self.networks = networks
        self.containers = containers
    }

    public struct Daemon: Sendable, Hashable {
        /// The engine's version, `20.10.24+dfsg1`, `29.0.0`.
        public var version: String
        /// The newest API version it speaks, `1.41`.
        public var apiVersion: String
        /// `iptables` or `nftables`, from `/info`'s `FirewallBackend` (Docker 28.2 and later).
        public var firewallBackend: String?
        /// `/info`'s `LiveRestoreEnabled`: containers keep running, with their addresses, while
        /// the daemon is down or restarts. Without it a daemon that starts again starts its
        /// containers anew, on addresses that may have been others'.
        public var liveRestore: Bool?

        public init(version: String, apiVersion: String, firewallBackend: String? = nil, liveRestore: Bool? = nil) {
            self.version = version
            self.apiVersion = apiVersion
            self.firewallBackend = firewallBackend
            self.liveRestore = liveRestore
        }

        /// The engine's major version: 20 for `20.10.24+dfsg1`; nil when it is no number.
        public var majorVersion: Int? { version.split(separator: ".").first.flatMap { Int($0) } }
    }

    public struct Network: Sendable, Hashable {
        public var name: String
        public var id: String
        /// RFC 3339, as the daemon writes it; empty when the source does not say.
        public var created = ""
        /// The Linux bridge: the `com.docker.network.bridge.name` option, else `br-` and the
        /// first 12 characters of the id, as libnetwork names it.
        public var bridge: String
        /// Docker's default network (`docker0`), whose options carry the daemon's `--icc`,
        /// `--ip-masq` and `--ip`.
        public var isDefault = false
        /// IPv4 first, then IPv6.
        public var subnets: [Subnet] = []
        public var `internal` = false
        public var enableIPv6 = false
        public var icc = true
        public var masquerade = true
        /// `com.docker.network.bridge.host_binding_ipv4` when it names an address.
        public var hostBinding: IPAddress?
        /// `com.docker.network.bridge.gateway_mode_ipv4`: `nat`, `routed`, `nat-unprotected`.
        public var gatewayMode: String?
        public var labels: [String: String] = [:]

        public init(name: String, id: String, bridge: String) {
            self.name = name
            self.id = id
            self.bridge = bridge
        }

        public func subnet(_ family: IPFamily) -> Subnet? { subnets.first { $0.prefix.address.family == family } }
    }

    public struct Subnet: Sendable, Hashable {
        /// Masked: `198.18.1.0/24`.
        public var prefix: IPPrefix
        public var gateway: IPAddress?

        public init(prefix: IPPrefix, gateway: IPAddress? = nil) {
            self.prefix = prefix
            self.gateway = gateway
        }
    }

    public struct Container: Sendable, Hashable {
        /// Without Docker's leading `/`.
        public var name: String
        public var id: String
        /// RFC 3339; empty when the source does not say.
        public var started = ""
        public var labels: [String: String] = [:]
        /// The network it was started on (`HostConfig.NetworkMode`) first, then the others by
        /// name: the API does not say in which order they were connected.
        public var endpoints: [Endpoint] = []
        /// `Config.ExposedPorts`, sorted.
        public var exposed: [PortSpec] = []
        /// `-P` (`HostConfig.PublishAllPorts`).
        public var publishAll = false
        /// What was asked (`HostConfig.PortBindings`), sorted: a nil host port is the daemon's
        /// to choose.
        public var portBindings: [PortBinding] = []
        /// What the daemon bound (`NetworkSettings.Ports`), sorted.
        public var ports: [BoundPort] = []

        public init(name: String, id: String) {
            self.name = name
            self.id = id
        }

        /// Compose's project and service (`com.docker.compose.*` labels), when it has both.
        public var composeService: (project: String, service: String)? {
            guard let project = labels["com.docker.compose.project"],
                let service = labels["com.docker.compose.service"]
            else { return nil }
            return (project, service)
        }
    }

    public struct Endpoint: Sendable, Hashable {
        public var network: String
        public var networkID: String
        /// With the prefix length the daemon gave it.
        public var ipv4: IPPrefix?
        public var ipv6: IPPrefix?
        /// Lower case, `02:42:c6:12:01:0a`.
        public var mac: String?

        public init(
            network: String, networkID: String, ipv4: IPPrefix? = nil, ipv6: IPPrefix? = nil, mac: String? = nil
        ) {
            self.network = network
            self.networkID = networkID
            self.ipv4 = ipv4
            self.ipv6 = ipv6
            self.mac = mac
        }
    }

    /// `80/tcp`.
    public struct PortSpec: Sendable, Hashable, Comparable, CustomStringConvertible {
        public var port: UInt16
        public var transport: TransportProtocol

        public init(port: UInt16, transport: TransportProtocol) {
            self.port = port
            self.transport = transport
        }

        public var description: String { "\(port)/\(transport.rawValue)" }
        public static func < (a: PortSpec, b: PortSpec) -> Bool { (a.port, a.transport) < (b.port, b.transport) }
    }

    /// One `-p`, as asked: `[HOST-IP:][HOST-PORT[-LAST]]:CONTAINER-PORT/PROTO`.
    public struct PortBinding: Sendable, Hashable, Comparable {
        public var container: PortSpec
        public var hostIP: IPAddress?
        /// Nil: the daemon chooses. A range of more than one port: it chose one of them.
        public var hostPorts: PortRange?

        public init(container: PortSpec, hostIP: IPAddress? = nil, hostPorts: PortRange? = nil) {
            self.container = container
            self.hostIP = hostIP
            self.hostPorts = hostPorts
        }

        public static func < (a: PortBinding, b: PortBinding) -> Bool {
            (a.container, a.hostPorts?.first ?? 0, a.hostIP?.description ?? "")
                < (b.container, b.hostPorts?.first ?? 0, b.hostIP?.description ?? "")
        }
    }

    /// A host port the daemon bound for a container port.
    public struct BoundPort: Sendable, Hashable, Comparable {
        public var container: PortSpec
        public var hostIP: IPAddress
        public var hostPort: UInt16

        public init(container: PortSpec, hostIP: IPAddress, hostPort: UInt16) {
            self.container = container
            self.hostIP = hostIP
            self.hostPort = hostPort
        }

        public static func < (a: BoundPort, b: BoundPort) -> Bool {
            (a.container, a.hostIP, a.hostPort) < (b.container, b.hostIP, b.hostPort)
        }
    }
}

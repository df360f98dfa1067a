import Foundation
import PortcullisDocker
import PortcullisImport
import PortcullisNet
import Testing

/// The inventory readers on recorded Engine API responses of Docker 28 and 29, on the seed's
/// Ansible facts, and on bad input, which must give one clear error naming where it is.
struct DockerInventoryParsingTests {
    static func fixture(_ name: String) -> (text: String, source: String) {
        (Repo.read(Repo.fixtures + "/docker-api/" + name), name)
    }

    @Test(arguments: [("28", "docker-28", nil), ("29", "docker-29", "nftables")] as [(String, String, String?)])
    func daemonVersionAndBackendChooseTheLayout(era: String, layout: String, backend: String?) throws {
        let daemon = try EngineDocuments.daemon(
            version: Self.fixture("docker-\(era)-version.json").text, info: Self.fixture("docker-\(era)-info.json").text
        )
        #expect(daemon.majorVersion == Int(era))
        let chosen = try #require(InventoryImport.layout(for: daemon))
        #expect(chosen.layout == layout)
        #expect(chosen.backend == backend)
        // What `watch` does when it loses the daemon depends on it.
        #expect(daemon.liveRestore == false)
        let restoring = try EngineDocuments.daemon(
            version: Self.fixture("docker-\(era)-version.json").text,
            info: Self.fixture("docker-\(era)-info.json").text.replacingOccurrences(
                of: "\"LiveRestoreEnabled\": false", with: "\"LiveRestoreEnabled\": true"))
        #expect(restoring.liveRestore == true)
    }

    @Test func olderDaemonsGetTheLayoutOfTheirEra() {
        func layout(_ version: String) -> String? {
            InventoryImport.layout(for: Inventory.Daemon(version: version, apiVersion: "1.41"))?.layout
        }
        #expect(layout("20.10.24+dfsg1") == "docker-20.10")
        #expect(layout("22.06.0") == "docker-20.10")
        #expect(layout("23.0.6") == "docker-23")
        #expect(layout("24.0.9") == "docker-23")
        #expect(layout("26.1.5+dfsg1") == "docker-25")
        #expect(layout("27.5.1") == "docker-25")
        #expect(layout("18.06.3-ce") == "docker-20.10")
        #expect(layout("18.03.1-ce") == nil)
        #expect(layout("nightly") == nil)
    }

    @Test(arguments: ["28", "29"])
    func recordedResponsesParse(era: String) throws {
        let inventory = try Inventory.fromInspectOutput([
            Self.fixture("docker-\(era)-networks.json"), Self.fixture("docker-\(era)-network-inspect.json"),
            Self.fixture("docker-\(era)-container-inspect.json"),
        ])
        // The list's bridge network; none, host and the overlay network are not bridges.
        #expect(inventory.networks.map(\.name) == ["bridge"])
        let bridge = try #require(inventory.networks.first)
        #expect(bridge.bridge == "docker0" && bridge.isDefault && bridge.icc && bridge.masquerade)
        #expect(bridge.subnets.map(\.prefix.description) == ["172.17.0.0/16"])
        let container = try #require(inventory.containers.first)
        #expect(container.name == "funny_chatelet")
        #expect(container.exposed.map(\.description) == ["80/tcp", "443/tcp"])
        let endpoint = try #require(container.endpoints.first)
        #expect(endpoint.network == "example")
        #expect(endpoint.ipv4?.description == "172.17.0.4/16")
        #expect(endpoint.ipv6?.description == "2001:db8::5689/64")
        #expect(endpoint.mac == "02:42:ac:11:00:04")
        #expect(
            container.ports.map { "\($0.hostIP):\($0.hostPort)->\($0.container)" } == [
                "0.0.0.0:53->53/udp", "0.0.0.0:80->80/tcp", "0.0.0.0:8080->80/tcp", "0.0.0.0:80->80/udp",
                "127.0.0.1:4443->443/tcp",
            ])

        // The container's network is none of the networks read: said, not guessed.
        let imported = InventoryImport.importHost(
            inventory, layout: "docker-\(era)", backend: nil, daemonFlags: [], origin: "fixtures")
        #expect(imported.containers.isEmpty)
        #expect(imported.notImported.contains("container funny_chatelet: on no imported network"))
    }

    @Test func snapshotReadsBackTheSameInventory() throws {
        var inventory = try Inventory.fromInspectOutput([
            Self.fixture("docker-29-networks.json"), Self.fixture("docker-29-container-inspect.json"),
        ])
        inventory.daemon = try EngineDocuments.daemon(
            version: Self.fixture("docker-29-version.json").text, info: Self.fixture("docker-29-info.json").text)
        let text = inventory.snapshot()
        #expect(text.hasPrefix("{\n  \"portcullis-inventory\": 1,\n"))
        #expect(try Inventory.fromSnapshot(text, source: "snapshot.json") == inventory)
        let newer = text.replacingOccurrences(of: "\"portcullis-inventory\": 1", with: "\"portcullis-inventory\": 2")
        #expect(
            throws: InventoryError(
                "new.json: $[\"portcullis-inventory\"]: inventory format 2 is not 1, the one this portcullis reads")
        ) {
            try Inventory.fromSnapshot(newer, source: "new.json")
        }
    }

    @Test(arguments: [
        (
            #"[{"Id": "a1", "Name": "/web", "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "", "HostPort": "eighty"}]}}}]"#,
            #"c.json: $[0].NetworkSettings.Ports["80/tcp"][0].HostPort: 'eighty' is not a port or port range"#
        ),
        (
            #"[{"Id": "a1", "Name": "/web", "NetworkSettings": {"Networks": {"front": {"IPAddress": "198.18.1.300", "IPPrefixLen": 24}}}}]"#,
            #"c.json: $[0].NetworkSettings.Networks.front.IPAddress: '198.18.1.300/24' is not an address with a prefix length"#
        ),
        (
            #"[{"Id": "a1", "Name": "/web", "State": {}, "Config": {"ExposedPorts": {"80/icmp": {}}}}]"#,
            #"c.json: $[0].Config.ExposedPorts["80/icmp"]: '80/icmp' is not a port and protocol such as 80/tcp"#
        ),
        (
            #"[{"Name": "front", "Id": "0123456789abcdef", "Driver": "bridge", "Options": {"com.docker.network.bridge.enable_icc": "maybe"}}]"#,
            #"c.json: $[0].Options["com.docker.network.bridge.enable_icc"]: 'maybe' is not true or false"#
        ),
        (
            #"[{"Name": "front", "Id": "0123456789abcdef", "Driver": "bridge", "Options": {"com.docker.network.bridge.name": "br front; rm"}}]"#,
            #"c.json: $[0]: bridge 'br front; rm' is not an interface name (forbiddenCharacter(" "))"#
        ),
        (
            #"[{"Hello": 1}]"#,
            "c.json: $[0]: neither a container nor a network (no NetworkSettings, State, IPAM or Driver)"
        ),
        (#"[{"Id": "a1", "Name": 7, "State": {}}]"#, "c.json: $[0].Name: expected a string"),
        ("[{", "c.json: not JSON: 1:2: string or '}' expected near end of file"),
    ])
    func malformedInspectOutputNamesItsPath(text: String, message: String) {
        #expect(throws: InventoryError(message)) { try Inventory.fromInspectOutput([(text, "c.json")]) }
    }

    /// The facts the seed's Ansible module printed for a Docker 1.5 host.
    @Test func ansibleFactsBecomeContainersOnTheirBridge() throws {
        let facts = """
            name = C4
            ip_address = 172.17.0.3
            prefix_len = 16
            gateway = 172.17.42.1
            mac_address = 02:42:ac:11:00:03
            bridge = docker0
            name = C3
            ip_address = 172.17.0.5
            prefix_len = 16
            gateway = 172.17.42.1
            mac_address = 02:42:ac:11:00:05
            bridge = docker0
            """
        let inventory = try Inventory.fromAnsibleFacts([(facts, "facts.txt")])
        #expect(inventory.networks.map(\.name) == ["bridge"])
        #expect(inventory.networks.first?.subnets.first?.gateway?.description == "172.17.42.1")
        #expect(inventory.containers.map(\.name) == ["C4", "C3"])
        let imported = InventoryImport.importHost(
            inventory, layout: "docker-20.10", backend: nil, daemonFlags: nil, origin: "Ansible facts")
        #expect(imported.networks.first?.gateways == ["172.17.42.1"])
        #expect(imported.containers.first?.attachments.first?.mac == "02:42:ac:11:00:03")

        #expect(throws: InventoryError("facts.txt:3: 'prefix_len' given twice for one container")) {
            try Inventory.fromAnsibleFacts([("name = a\nprefix_len = 16\nprefix_len = 8", "facts.txt")])
        }
        #expect(throws: InventoryError("facts.txt:1: container without 'bridge'")) {
            try Inventory.fromAnsibleFacts([("name = a\nip_address = 10.0.0.2\nprefix_len = 8", "facts.txt")])
        }
    }

    @Test func absentOrRefusingDaemonIsOneClearLine() throws {
        let missing = "/tmp/pc-no-daemon-\(getpid()).sock"
        #expect(
            throws: InventoryError(
                "no Docker daemon at unix://\(missing): the socket does not exist",
                hint: "is dockerd running? --docker-host or DOCKER_HOST name another socket")
        ) { try EngineClient(host: "unix://" + missing).inventory() }

        // A socket file nobody listens on: what a stopped daemon leaves behind.
        let path = "/tmp/pc-stale-\(getpid()).sock"
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer {
            close(descriptor)
            unlink(path)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        try #require(bound == 0)
        #expect(
            throws: InventoryError(
                "the Docker daemon at unix://\(path) refused the connection",
                hint: "dockerd has stopped or is restarting; the socket file is left over")
        ) { try EngineClient(host: "unix://" + path).inventory() }

        #expect(throws: InventoryError.self) { try EngineClient(host: "ssh://docker@host") }
        #expect(
            try EngineClient(host: nil, environment: ["DOCKER_HOST": "tcp://127.0.0.1:2375"]).host
                == "tcp://127.0.0.1:2375")
        #expect(try EngineClient(host: nil, environment: [:]).host == "unix:///var/run/docker.sock")
    }
}

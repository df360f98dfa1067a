import Foundation
import PortcullisCompiler
import Testing

/// Policies bound to an inventory (`--inventory`): what they leave out comes from the host,
/// what they pin must agree, what the host does not run is left out. The host is the snapshot
/// of the real Docker 20.10 host DockerInventoryTests builds (Fixtures/inventory/shop.json).
@Suite struct InventoryBindingTests {
    static let snapshot = Repo.fixtures + "/inventory/shop.json"
    static let host = InventorySource.snapshot(snapshot)

    /// The shop stack by Compose service, with no address, bridge or subnet written.
    static let unpinned = """
        host {
            userland-proxy off
        }

        addresses office { 198.51.100.0/24 }

        group shop-web { compose shop/web }
        group shop-api { label com.docker.compose.service=api }

        container web {
            attach front
            publish 8080 -> 80/tcp from office
        }

        allow shop-web -> shop-api port 9000/tcp
        deny shop-api -> db
        egress shop-api -> 203.0.113.0/24 port 443/tcp

        """

    static let flows = """

        addresses office { 198.51.100.0/24 }

        allow shop-web -> shop-api port 9000/tcp
        deny shop-api -> db
        egress shop-api -> 203.0.113.0/24 port 443/tcp

        """

    /// A policy in a directory of its own.
    static func write(_ text: String, name: String = "host.policy") throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pc-bind-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func compile(_ path: String, layout: String? = nil, bound: Bool = true) -> CommandResult {
        inProcess { try $0.runCompile(path, layout: layout, backend: nil, output: nil, inventory: bound ? host : nil) }
    }

    /// The same host with every address, bridge and subnet written: `import` of the snapshot,
    /// the allow-list added to the publish, the same flows after it.
    static func pinned(from source: InventorySource) throws -> String {
        let imported = inProcess { try $0.runImport(ImportRequest(inventory: source)) }
        try #require(imported.status == 0, "\(imported.stderr)")
        // The snapshot cannot say the daemon runs without the userland proxy; the rules could.
        let policy = imported.stdout.replacingOccurrences(
            of: "    publish 8080 -> 80/tcp\n", with: "    publish 8080 -> 80/tcp from office\n"
        ).replacingOccurrences(
            of: "    layout docker-20.10\n", with: "    layout docker-20.10\n    userland-proxy off\n")
        #expect(policy.contains("from office") && policy.contains("userland-proxy off"), "\(policy)")
        return policy + flows
    }

    @Test(arguments: [nil, "docker-28", "native"])
    func unpinnedPolicyCompilesAsThePinnedOne(layout: String?) throws {
        let pinned = Self.compile(try Self.write(try Self.pinned(from: Self.host)), layout: layout, bound: false)
        let bound = Self.compile(try Self.write(Self.unpinned), layout: layout)
        try #require(pinned.status == 0, "\(pinned.stderr)")
        try #require(bound.status == 0, "\(bound.stderr)")
        #expect(bound.stdout == pinned.stdout)
        #expect(bound.stdout.contains("198.51.100.0/24"))
        #expect(bound.stderr.contains("bound to the inventory snapshot"))
    }

    @Test func theDaemonsLayoutIsTheDefault() throws {
        let bound = Self.compile(try Self.write(Self.unpinned))
        // Docker 20.10 writes DOCKER-ISOLATION-STAGE-2; docker-28 and later a DOCKER-FORWARD chain.
        #expect(bound.stdout.contains(":DOCKER-ISOLATION-STAGE-2"))
        #expect(!bound.stdout.contains("DOCKER-FORWARD"))
    }

    /// Pinned values that disagree with the host: an error at the value, naming both.
    @Test(arguments: [
        (
            "container web {\n    attach front 198.18.20.99\n}\n",
            "the policy says web has 198.18.20.99 on front, but the host", "198.18.20.10"
        ),
        (
            "container web {\n    attach back\n}\n", "container 'web' is not on network 'back' on the host",
            "it is on front"
        ),
        (
            "network front {\n    subnet 198.18.99.0/24\n}\n", "the policy says subnet 198.18.99.0/24",
            "has subnet 198.18.20.0/24"
        ),
        ("network back {\n    bridge br-back\n}\n", "the policy says bridge br-back", "has bridge br-31315459840b"),
        ("network quiet {\n    icc allow\n}\n", "the policy says icc allow", "denies ICC"),
        (
            "container web {\n    publish 9090 -> 80/tcp\n}\n", "container 'web' has no publish 9090 -> 80/tcp",
            "127.0.0.1:8443 -> 443/tcp"
        ),
        (
            "container web {\n    attach front mac 02:42:00:00:00:01\n}\n", "the policy says mac 02:42:00:00:00:01",
            "02:42:c6:12:14:0a"
        ),
        (
            "container dyn {\n    publish-all\n}\ncontainer web {\n    publish-all\n}\n",
            "container 'web' was not started with -P", "restart the container with -P"
        ),
        ("host {\n    icc deny\n}\n", "the policy says icc deny", "allows ICC on the default network"),
        ("group web { db }\n", "'web' is a container on the host", "but a group here"),
        (
            "container solo {\n    publish 7000/tcp chosen 32770\n}\n",
            "container 'solo' has no publish 7000/tcp chosen 32770", "it publishes 7000/tcp"
        ),
    ])
    func disagreementsAreErrors(policy: String, message: String, detail: String) throws {
        let path = try Self.write(policy)
        let result = Self.compile(path)
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("\(path):"), "\(result.stderr)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(result.stderr.contains(detail), "\(result.stderr)")
    }

    /// What agrees is accepted: pinned addresses, the host's daemon-chosen port written out,
    /// a publish left to the daemon with the port it chose, settings that say the defaults.
    @Test func agreeingPinsAreAccepted() throws {
        let policy = """
            network quiet {
                icc deny
                masquerade on
            }

            container web {
                attach front 198.18.20.10 mac 02:42:C6:12:14:0A
                publish 127.0.0.1:8443 -> 443/tcp from 198.51.100.7
            }

            container solo {
                publish 7000/tcp from 198.51.100.8 chosen 32769
            }

            """
        let result = Self.compile(try Self.write(policy))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("-s 198.51.100.7/32 -d 198.18.20.10/32"))
        #expect(result.stdout.contains("-s 198.51.100.8/32 -d 198.18.22.7/32"))
    }

    /// A container the host does not run: a warning, and no rules, as if it were not written.
    @Test func containersTheHostDoesNotRunAreLeftOut() throws {
        let ghost = """
            container ghost {
                attach front 198.18.20.50
            }

            group ghosts { ghost }
            group nobody { compose shop/payments }

            allow shop-web -> ghost port 80/tcp
            allow ghosts -> shop-web
            allow nobody -> shop-web

            """
        let withGhost = Self.compile(try Self.write(Self.unpinned + ghost))
        let without = Self.compile(try Self.write(Self.unpinned))
        try #require(withGhost.status == 0, "\(withGhost.stderr)")
        #expect(withGhost.stdout == without.stdout)
        #expect(withGhost.stderr.contains("warning: container 'ghost' is not running on the host"))
        #expect(withGhost.stderr.contains("warning: compose shop/payments selects no running container"))
    }

    @Test func unpinnedFormsNeedAnInventory() throws {
        let path = try Self.write(Self.unpinned)
        let result = Self.compile(path, bound: false)
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(path):11:12: error: no address for 'web' on 'front'"), "\(result.stderr)")
        #expect(result.stderr.contains("--inventory docker"))
        #expect(
            result.stderr.contains("\(path):7:18: error: group 'shop-web' selects containers by compose 'shop/web'"))
    }

    /// Selectors and unpinned attachments print in canonical form and read back the same.
    @Test func selectorsPrintAndReadBack() throws {
        let text = """
            group labelled {
                label "com.example.role=web server",
                compose shop,
                web
            }

            group one { compose shop/web }

            container web {
                attach front
                attach back mac 02:42:c6:12:15:02
            }

            """
        let path = try Self.write(text)
        let formatted = inProcess { $0.runFormat([path], mode: .check) }
        #expect(formatted.status == 0, "\(formatted.stderr)")
        let result = Self.compile(path)
        #expect(result.status == 2)
        // `attach back` names a network web is not on: the selector and the MAC parsed as such.
        #expect(result.stderr.contains("container 'web' is not on network 'back'"), "\(result.stderr)")
        #expect(result.stderr.contains("selects no running container"), "\(result.stderr)")
    }
}

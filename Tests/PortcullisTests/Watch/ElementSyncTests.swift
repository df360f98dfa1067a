import Foundation
import PortcullisCompiler
import PortcullisDocker
import PortcullisKernel
import PortcullisNet
import Testing

@testable import PortcullisWatch

/// The watcher's delta path against the full compile: seeded random starts, stops, restarts and
/// connects on a native host, and after every step the table the delta path leaves (when it
/// can say the change) equals the table of the policy compiled for the whole host, structure,
/// declarations and elements. A change it cannot say is a full sync, as in the watcher.
struct ElementSyncTests {
    static let egressOnly = """
        host {
            unknown-containers drop
        }
        addresses partners { 198.19.250.0/24 }
        group webs { label role=web }
        group jobs { label role=job }
        egress webs -> partners port 443/tcp
        egress jobs -> any port 53/udp, 8000-8100/tcp

        """

    /// Flows between groups: a container they name takes a full sync, others do not.
    static let withFlows =
        egressOnly + """
            group apis { label role=api }
            allow webs -> apis port 8000/tcp
            deny jobs -> apis

            """

    /// Egress to one address and to a prefix share a set, which needs `flags interval` for the
    /// prefix's elements only: a web's slice has no interval flag, the host's set has.
    static let mixedEgress = """
        host {
            unknown-containers drop
        }
        group webs { label role=web }
        group jobs { label role=job }
        egress webs -> 198.19.250.7 port 443/tcp
        egress jobs -> 198.19.251.0/24 port 443/tcp

        """

    static let networks = [
        Fake.network("bridge", id: "bridge", octet: 1, created: "2024-01-01T00:00:00Z", isDefault: true),
        Fake.network("back", id: "back", octet: 2, created: "2024-01-02T00:00:00Z"),
    ]

    static func container(_ number: Int, role: String?, networks: [String], publishes: Bool) -> Inventory.Container {
        var container = Fake.container(
            "c\(number)", id: "id\(number)",
            started: String(format: "2024-01-01T01:%02d:%02dZ", number / 60, number % 60),
            on: networks.map { ($0, $0 == "bridge" ? 1 : 2, 10 + number) })
        if let role { container.labels = ["role": role] }
        if publishes {
            let spec = Inventory.PortSpec(port: 80, transport: .tcp)
            container.exposed = [spec]
            container.portBindings = [.init(container: spec, hostPorts: PortRange(UInt16(20000 + number)))]
            container.ports = [.init(container: spec, hostIP: IPAddress("0.0.0.0")!, hostPort: UInt16(20000 + number))]
        }
        return container
    }

    @Test(arguments: [("egress", 1_412), ("flows", 1_412), ("flows", 77), ("mixed", 5)] as [(String, UInt64)])
    func theDeltaPathLeavesTheTableTheFullCompileGives(policyName: String, seed: UInt64) throws {
        let policy = ["flows": Self.withFlows, "mixed": Self.mixedEgress][policyName] ?? Self.egressOnly
        let path = NSTemporaryDirectory() + "portcullis-elements-\(getpid())-\(policyName)-\(seed).policy"
        try policy.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let loaded = try Compiler().load(path).get()
        let slice = ElementSync.slices(of: loaded, path: path, layout: "native", backend: "nftables", origin: "test")
        func full(_ inventory: Inventory) throws -> ElementTable {
            let compiled = try #require(slice(inventory), "the policy compiles for the host")
            return ElementTable(compiled.text)
        }

        var random = SeededGenerator(seed: seed)
        let roles = ["web", "job", "api", nil]
        var inventory = Inventory(source: "docker", networks: Self.networks)
        for number in 0..<12 {
            inventory.containers.append(
                Self.container(
                    number, role: roles[number % 4], networks: ["bridge"], publishes: number % 3 == 0))
        }
        var sync = ElementSync(inventory: inventory, table: try full(inventory))
        var (deltas, fullSyncs, next) = (0, 0, 12)
        for step in 0..<60 {
            var new = inventory
            switch Int.random(in: 0..<5, using: &random) {
            case 0, 1:
                new.containers.append(
                    Self.container(
                        next, role: roles.randomElement(using: &random)!,
                        networks: Bool.random(using: &random) ? ["bridge"] : ["back"],
                        publishes: Bool.random(using: &random)))
                next += 1
            case 2 where new.containers.count > 1:
                new.containers.remove(at: Int.random(in: 0..<new.containers.count, using: &random))
            case 3 where !new.containers.isEmpty:
                // Restarted: a later start, the same elements.
                let at = Int.random(in: 0..<new.containers.count, using: &random)
                new.containers[at].started += "1"
            default:
                // Connected to the other network as well.
                guard let at = new.containers.indices.first(where: { new.containers[$0].endpoints.count == 1 })
                else { continue }
                let other = new.containers[at].endpoints[0].network == "bridge" ? "back" : "bridge"
                new.containers[at].endpoints +=
                    Self.container(
                        Int(new.containers[at].id.dropFirst(2))!, role: nil, networks: [other], publishes: false
                    ).endpoints
            }
            let wanted = try full(new)
            switch sync.delta(to: new, flowEnds: ElementSync.flowEnds(loaded), slice: slice) {
            case .success(let delta):
                let batch = sync.table.batch(removing: delta.removed, adding: delta.added)
                #expect(batch.contains("add element") == (delta.count.added > 0), "\(batch)")
                #expect(batch.contains("delete element") == (delta.count.removed > 0), "\(batch)")
                sync.take(delta, to: new)
                deltas += 1
                #expect(sync.table.skeleton == wanted.skeleton, "seed \(seed) step \(step)")
                #expect(sync.table.declarations == wanted.declarations, "seed \(seed) step \(step)")
                let places = Set(sync.table.elements.keys).union(wanted.elements.keys)
                let differences = places.sorted().compactMap { place -> String? in
                    let (have, want) = (sync.table.elements[place] ?? [], wanted.elements[place] ?? [])
                    guard have != want else { return nil }
                    return
                        "\(place): extra \(have.subtracting(want).sorted()), missing \(want.subtracting(have).sorted())"
                }
                #expect(
                    differences.isEmpty,
                    "seed \(seed) step \(step): \(delta.started.map(\.name)) started, \(delta.stopped.map(\.name)) stopped:\n\(differences.joined(separator: "\n"))"
                )
            case .failure:
                sync = ElementSync(inventory: new, table: wanted)
                fullSyncs += 1
            }
            inventory = new
        }
        // The path is taken where it can be: with flows, by the containers in no group a flow
        // names (a quarter of them), and not by the others.
        let counts = "seed \(seed): \(deltas) deltas, \(fullSyncs) full syncs"
        if policyName == "flows" {
            #expect(deltas >= 5 && fullSyncs > 30, "\(counts)")
        } else {
            // Without flows every step here is said as elements (with mixed egress too, whose
            // set's interval flag only the jobs' prefixes need).
            #expect(fullSyncs == 0, "\(counts)")
        }
    }
    /// A container started at an address another one holds (Docker never does this on one
    /// network; an inventory may say it): a full sync, whose checker says what is wrong, since an
    /// element naming the address may be the other's.
    @Test func anAddressAnotherContainerHoldsIsLeftToAFullSync() throws {
        let path = NSTemporaryDirectory() + "portcullis-elements-\(getpid())-shared.policy"
        try Self.egressOnly.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let loaded = try Compiler().load(path).get()
        let slice = ElementSync.slices(of: loaded, path: path, layout: "native", backend: "nftables", origin: "test")
        let first = Self.container(1, role: "web", networks: ["bridge"], publishes: false)
        var second = Self.container(2, role: "job", networks: ["bridge"], publishes: false)
        second.endpoints = first.endpoints
        let one = Inventory(source: "docker", networks: Self.networks, containers: [first])
        let compiled = try #require(slice(one))
        let sync = ElementSync(inventory: one, table: ElementTable(compiled.text))
        var both = one
        both.containers.append(second)
        let delta = sync.delta(to: both, flowEnds: [], slice: slice)
        guard case .failure(.sharedAddress) = delta else {
            Issue.record("expected a full sync, got \(delta)")
            return
        }
    }
}

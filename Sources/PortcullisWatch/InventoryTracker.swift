import PortcullisDocker

/// Reads one object from the daemon, for the tracker: nil when it is gone, or is no longer
/// something the inventory holds (a container that is not running, a network that is no bridge).
public protocol EngineInspector: Sendable {
    func container(id: String) async throws -> Inventory.Container?
    func network(id: String) async throws -> Inventory.Network?
}

extension EngineSession: EngineInspector {}

/// What one event changed in the inventory, in words for the sync's log line.
public enum InventoryChange: Sendable, Hashable, CustomStringConvertible {
    case containerStarted(String)
    case containerStopped(String)
    /// Its networks, addresses, ports or name changed.
    case containerChanged(String)
    case networkCreated(String)
    case networkRemoved(String)
    case networkChanged(String)

    public var description: String {
        switch self {
        case .containerStarted(let name): "\(name) started"
        case .containerStopped(let name): "\(name) stopped"
        case .containerChanged(let name): "\(name) changed"
        case .networkCreated(let name): "network \(name) created"
        case .networkRemoved(let name): "network \(name) removed"
        case .networkChanged(let name): "network \(name) changed"
        }
    }
}

/// The current inventory of a daemon, kept up to date one event at a time: the object an event
/// names is read again (or dropped), so that the inventory equals what a full read
/// (`EngineClient.inventory()`) would give at that moment, in the same order (the default
/// bridge, then networks by creation; containers by start).
public struct InventoryTracker: Sendable {
    public private(set) var inventory: Inventory

    public init(_ inventory: Inventory) { self.inventory = inventory }

    /// Applies one event; the change, or nil when nothing the firewall depends on changed.
    /// An inspector error leaves the inventory as it was and is thrown (the caller re-lists).
    public mutating func apply(_ event: EngineEvent, inspector: any EngineInspector) async throws -> InventoryChange? {
        switch (event.type, event.action) {
        case ("container", "start"), ("container", "rename"):
            return try await refreshContainer(event.actorID, inspector: inspector)
        case ("container", "die"), ("container", "destroy"):
            return removeContainer(event.actorID)
        case ("network", "create"):
            return try await refreshNetwork(event.actorID, inspector: inspector)
        case ("network", "destroy"):
            return removeNetwork(event.actorID)
        case ("network", "connect"), ("network", "disconnect"):
            guard let container = event.attributes["container"], !container.isEmpty else { return nil }
            return try await refreshContainer(container, inspector: inspector)
        default:
            // `container create` (no rules until it starts), and anything not asked for.
            return nil
        }
    }

    /// Reads the container again: added (in start order), replaced, or dropped.
    mutating func refreshContainer(_ id: String, inspector: any EngineInspector) async throws -> InventoryChange? {
        guard let fresh = try await inspector.container(id: id) else { return removeContainer(id) }
        guard let index = inventory.containers.firstIndex(where: { $0.id == fresh.id }) else {
            let position =
                inventory.containers.firstIndex { ($0.started, $0.name) > (fresh.started, fresh.name) }
                ?? inventory.containers.endIndex
            inventory.containers.insert(fresh, at: position)
            return .containerStarted(fresh.name)
        }
        let old = inventory.containers[index]
        guard old != fresh else { return nil }
        inventory.containers.remove(at: index)
        // A restart the tracker missed gives a later start time: its place may move.
        let position =
            inventory.containers.firstIndex { ($0.started, $0.name) > (fresh.started, fresh.name) }
            ?? inventory.containers.endIndex
        inventory.containers.insert(fresh, at: position)
        return .containerChanged(fresh.name)
    }

    mutating func removeContainer(_ id: String) -> InventoryChange? {
        guard let index = inventory.containers.firstIndex(where: { $0.id == id }) else { return nil }
        return .containerStopped(inventory.containers.remove(at: index).name)
    }

    mutating func refreshNetwork(_ id: String, inspector: any EngineInspector) async throws -> InventoryChange? {
        guard let fresh = try await inspector.network(id: id) else { return removeNetwork(id) }
        let existing = inventory.networks.firstIndex { $0.id == fresh.id }
        if let existing {
            guard inventory.networks[existing] != fresh else { return nil }
            inventory.networks.remove(at: existing)
        }
        let position =
            inventory.networks.firstIndex { Self.networkPrecedes(fresh, $0) } ?? inventory.networks.endIndex
        inventory.networks.insert(fresh, at: position)
        return existing == nil ? .networkCreated(fresh.name) : .networkChanged(fresh.name)
    }

    mutating func removeNetwork(_ id: String) -> InventoryChange? {
        guard let index = inventory.networks.firstIndex(where: { $0.id == id }) else { return nil }
        return .networkRemoved(inventory.networks.remove(at: index).name)
    }

    /// The order of `Inventory.assembled`: the default bridge first, then by creation.
    static func networkPrecedes(_ a: Inventory.Network, _ b: Inventory.Network) -> Bool {
        a.isDefault != b.isDefault ? a.isDefault : (a.created, a.name) < (b.created, b.name)
    }
}

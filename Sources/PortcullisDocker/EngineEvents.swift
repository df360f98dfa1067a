import AsyncHTTPClient
import Foundation
import NIOCore

/// One event of the daemon's `GET /events` stream: `{"Type": "container", "Action": "start",
/// "Actor": {"ID": "…", "Attributes": {"name": "web", …}}, "time": …, "timeNano": …}`. For
/// network `connect` and `disconnect` the actor is the network and `attributes["container"]`
/// the container.
public struct EngineEvent: Sendable, Hashable {
    /// `container`, `network` (others are not asked for).
    public var type: String
    /// `create`, `start`, `die`, `destroy`, `connect`, `disconnect`, …
    public var action: String
    public var actorID: String
    public var attributes: [String: String]
    /// Nanoseconds since the epoch; 0 when the daemon did not say.
    public var timeNano: Int64

    public init(type: String, action: String, actorID: String, attributes: [String: String] = [:], timeNano: Int64 = 0)
    {
        self.type = type
        self.action = action
        self.actorID = actorID
        self.attributes = attributes
        self.timeNano = timeNano
    }

    /// The kinds of object and the actions a firewall depends on: what `/events` is asked for.
    public static let types = ["container", "network"]
    public static let actions = ["create", "start", "die", "destroy", "connect", "disconnect", "rename"]

    /// One line of the stream.
    public static func decode(_ line: String) throws(InventoryError) -> EngineEvent {
        let node = try JSONNode.parse(line, source: "/events")
        let actor = try node.optional("Actor")
        var time = try node.optional("timeNano")?.integer() ?? 0
        if time == 0, let seconds = try node.optional("time")?.integer() { time = seconds * 1_000_000_000 }
        return EngineEvent(
            // `Type` since API 1.22; before it, `status` and `id` (not read here: 1.41 and later).
            type: try node.required("Type").string(), action: try node.required("Action").string(),
            actorID: try actor?.optional("ID")?.string() ?? "",
            attributes: try actor?.optional("Attributes")?.stringMap() ?? [:], timeNano: Int64(time))
    }
}

/// Splits the stream's bytes into events: newline-separated JSON documents, in chunks cut
/// anywhere (mid-line, several lines in one chunk). A partial line waits for its end.
public struct EngineEventDecoder: Sendable {
    /// Longer than this without a newline, the stream is not events.
    public static let maximumLine = 1 << 20
    private var partial: [UInt8] = []

    public init() {}

    /// The events the chunk completes.
    public mutating func feed<Bytes: Sequence>(_ chunk: Bytes) throws(InventoryError) -> [EngineEvent]
    where Bytes.Element == UInt8 {
        var events: [EngineEvent] = []
        for byte in chunk {
            guard byte == UInt8(ascii: "\n") else {
                partial.append(byte)
                guard partial.count <= Self.maximumLine else {
                    throw InventoryError("/events: a line of more than \(Self.maximumLine) bytes; not an event stream")
                }
                continue
            }
            defer { partial.removeAll(keepingCapacity: true) }
            let line = String(decoding: partial, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !line.isEmpty { events.append(try EngineEvent.decode(line)) }
        }
        return events
    }

    /// At the end of the stream: a last line without its newline is still an event.
    public mutating func finish() throws(InventoryError) -> [EngineEvent] { try feed([UInt8(ascii: "\n")]) }
}

/// A connection to one daemon for a watcher: its API version is asked once, then the event
/// stream and single objects are read over one HTTP client, which `shutdown()` closes.
public final class EngineSession: Sendable {
    public let engine: EngineClient
    /// `/v1.41`.
    let prefix: String
    let http: HTTPClient

    /// Checks the daemon (ping, version) as `inventory()` does.
    public init(_ engine: EngineClient) async throws(InventoryError) {
        if case .unixSocket(let path) = engine.address { try EngineClient.checkSocket(path) }
        self.engine = engine
        // No read timeout: the event stream is quiet for as long as nothing happens.
        http = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: .init(timeout: .init(connect: .seconds(10))))
        do {
            _ = try await Self.get("/_ping", engine, http)
            let daemon = try EngineDocuments.daemon(version: try await Self.get("/version", engine, http), info: nil)
            prefix = try engine.apiPrefix(daemon)
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    public func shutdown() async { try? await http.shutdown() }

    /// The event stream, once the daemon has answered: containers and networks created,
    /// started, stopped, removed, connected and disconnected, from now on (or from `since`,
    /// a Unix time in seconds, within the 256 events the daemon keeps).
    public func events(since: String? = nil) async throws(InventoryError) -> EngineEventStream {
        let filters =
            #"{"type":[\#(EngineEvent.types.map { "\"\($0)\"" }.joined(separator: ","))],"#
            + #""event":[\#(EngineEvent.actions.map { "\"\($0)\"" }.joined(separator: ","))]}"#
        var path = prefix + "/events?filters=" + Self.queryEncoded(filters)
        if let since { path += "&since=" + Self.queryEncoded(since) }
        let response = try await Self.execute(path, engine, http)
        guard response.status.code == 200 else {
            throw try await Self.refusal(response, path: path, engine: engine)
        }
        return EngineEventStream(body: response.body)
    }

    /// `GET /containers/{id}/json`: nil when the container is gone or not running.
    public func container(id: String) async throws(InventoryError) -> Inventory.Container? {
        guard let node = try await object("/containers/\(try Self.checked(id))/json") else { return nil }
        return try EngineDocuments.container(node)
    }

    /// `GET /networks/{id}`: nil when the network is gone or is no bridge.
    public func network(id: String) async throws(InventoryError) -> Inventory.Network? {
        guard let node = try await object("/networks/\(try Self.checked(id))") else { return nil }
        return try EngineDocuments.network(node)
    }

    /// A document, or nil for 404.
    func object(_ path: String) async throws(InventoryError) -> JSONNode? {
        let response = try await Self.execute(prefix + path, engine, http)
        if response.status.code == 404 { return nil }
        guard response.status.code == 200 else {
            throw try await Self.refusal(response, path: path, engine: engine)
        }
        return try JSONNode.parse(try await Self.body(response, path: path, engine: engine), source: path)
    }

    /// Ids are hex; names (which the API also takes) are letters, digits, `_.-`.
    static func checked(_ id: String) throws(InventoryError) -> String {
        guard !id.isEmpty, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) else {
            throw InventoryError("'\(id)' is not a container or network id")
        }
        return id
    }

    static func queryEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~")))
            ?? text
    }

    static func get(_ path: String, _ engine: EngineClient, _ http: HTTPClient) async throws(InventoryError) -> String {
        let response = try await execute(path, engine, http)
        guard response.status.code == 200 else { throw try await refusal(response, path: path, engine: engine) }
        return try await body(response, path: path, engine: engine)
    }

    /// Sends the request and waits for the response's head (30 s at most); the body is read
    /// afterwards, without a deadline.
    static func execute(_ path: String, _ engine: EngineClient, _ http: HTTPClient) async throws(InventoryError)
        -> HTTPClientResponse
    {
        var request = HTTPClientRequest(url: try engine.url(path).absoluteString)
        request.method = .GET
        // As in `get`: Go's HTTP/1.1 server refuses a request without a Host header.
        request.headers.replaceOrAdd(name: "Host", value: "localhost")
        do {
            return try await http.execute(request, timeout: .seconds(30))
        } catch {
            throw InventoryError(
                "cannot read \(path) from the Docker daemon at \(engine.host): \(error)",
                hint: "is dockerd running and listening there?")
        }
    }

    static func body(_ response: HTTPClientResponse, path: String, engine: EngineClient) async throws(InventoryError)
        -> String
    {
        do {
            var buffer = try await response.body.collect(upTo: 64 << 20)
            return buffer.readString(length: buffer.readableBytes) ?? ""
        } catch {
            throw InventoryError("cannot read \(path) from the Docker daemon at \(engine.host): \(error)")
        }
    }

    /// Anything but 200, quoting the daemon's message.
    static func refusal(_ response: HTTPClientResponse, path: String, engine: EngineClient) async throws(InventoryError)
        -> InventoryError
    {
        let text = try await body(response, path: path, engine: engine)
        let message = (try? JSONNode.parse(text, source: path).optional("message")?.string()) ?? text
        return InventoryError("\(engine.host) answered \(path) with \(response.status.code): \(message)")
    }
}

/// The events of one `/events` response, decoded as their chunks arrive. It ends when the
/// daemon closes the stream (it stops or restarts) and throws when the connection breaks.
public struct EngineEventStream: AsyncSequence, Sendable {
    public typealias Element = EngineEvent
    let body: HTTPClientResponse.Body

    public func makeAsyncIterator() -> Iterator { Iterator(chunks: body.makeAsyncIterator()) }

    public struct Iterator: AsyncIteratorProtocol {
        var chunks: HTTPClientResponse.Body.AsyncIterator
        var decoder = EngineEventDecoder()
        var ready: [EngineEvent] = []
        var ended = false

        public mutating func next() async throws -> EngineEvent? {
            while ready.isEmpty && !ended {
                do {
                    if let chunk = try await chunks.next() {
                        ready = try decoder.feed(chunk.readableBytesView)
                    } else {
                        ended = true
                        ready = try decoder.finish()
                    }
                } catch let error as InventoryError {
                    throw error
                } catch {
                    throw InventoryError("the Docker daemon's event stream broke: \(error)")
                }
            }
            return ready.isEmpty ? nil : ready.removeFirst()
        }
    }
}

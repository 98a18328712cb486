import Commands

/// A box's session for ``DispatchStateMachine`` tests: an id and a box, nothing else.
public struct FakeSession: DispatchSession, Equatable {
    public var id: String
    public var deviceID: String
    public init(id: String, deviceID: String) {
        self.id = id
        self.deviceID = deviceID
    }
}

/// A job for ``DispatchStateMachine`` tests.
public struct FakeJob: DispatchJob, Equatable {
    public var id: String
    public var name: String
    public var createdAt: Int64
    public var deadline: Int64
    public init(id: String, name: String = "reboot", createdAt: Int64 = 0, deadline: Int64 = 1_000_000_000) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
        self.deadline = deadline
    }
}

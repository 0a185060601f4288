# pragma version 0.4.3
"""
@title OffchainAggregator (enclave tests)
@notice An OCR1-compatible aggregator for the project's tests, written from the fact sheet
        (notes: ocr-and-sources.md A.2.1-A.2.3): the same selectors, calldata layout, checks,
        revert strings, config digest and events as libocr's `OffchainAggregator` 4.0.0, so
        that an oracle that transmits to this contract transmits to the real one.
        Both setConfig flavours are served: the standard one (585aa7de) and the Super Protocol
        struct variant (67dd81f0, with setConsensusConfig 67222871).
        Left out on purpose: LINK billing and payees, the answer validator, access control
        (reads are open, like an eth_call from an EOA), ownership transfer.
"""

MAX_NUM_ORACLES: constant(uint256) = 31
# Calldata bounds are wider than the protocol limits, so that a report with too many
# observations or signatures reaches the contract's own check (and its revert string) instead of
# failing in Vyper's argument decoder. A 4096-byte report holds up to 124 observations.
MAX_REPORT_LENGTH: constant(uint256) = 4096
MAX_OBSERVATIONS: constant(uint256) = 124
MAX_SIGNATURES: constant(uint256) = 64
MAX_CONFIG_ADDRESSES: constant(uint256) = 64
MAX_ENCODED_LENGTH: constant(uint256) = 20000
MAX_PEER_IDS_LENGTH: constant(uint256) = 2048
# Super Protocol setConfig calldata (after the selector) in 32-byte words; the largest valid
# argument (31 oracles, 2048-character peer list) takes 236.
MAX_SP_CALLDATA_WORDS: constant(uint256) = 240
SP_SET_CONFIG: constant(bytes4) = 0x67dd81f0

ROLE_UNSET: constant(uint8) = 0
ROLE_SIGNER: constant(uint8) = 1
ROLE_TRANSMITTER: constant(uint8) = 2

struct Oracle:
    index: uint8
    role: uint8

struct Transmission:
    answer: int192
    timestamp: uint64

struct SharedSecretEncryptions:
    diffieHellmanPoint: bytes32
    sharedSecretHash: bytes32
    encryptions: DynArray[bytes16, MAX_NUM_ORACLES]

# The Super Protocol setConfig argument.
struct SetConfigArgs:
    signers: DynArray[address, MAX_NUM_ORACLES]
    transmitters: DynArray[address, MAX_NUM_ORACLES]
    threshold: uint8
    s: DynArray[uint8, MAX_NUM_ORACLES]
    offchainPublicKeys: DynArray[bytes32, MAX_NUM_ORACLES]
    peerIDs: String[MAX_PEER_IDS_LENGTH]
    sharedSecretEncryptions: SharedSecretEncryptions

# Durations in nanoseconds, as libocr encodes them.
struct ConsensusParams:
    deltaProgress: int64
    deltaResend: int64
    deltaRound: int64
    deltaGrace: int64
    deltaC: int64
    alphaPPB: uint64
    deltaStage: int64
    rMax: uint8
    encodedConfigVersion: uint64

# libocr's setConfigEncodedComponents: `encoded = abi.encode(ConsensusConfig)`.
struct ConsensusConfig:
    deltaProgress: int64
    deltaResend: int64
    deltaRound: int64
    deltaGrace: int64
    deltaC: int64
    alphaPPB: uint64
    deltaStage: int64
    rMax: uint8
    s: DynArray[uint8, MAX_NUM_ORACLES]
    offchainPublicKeys: DynArray[bytes32, MAX_NUM_ORACLES]
    peerIDs: String[MAX_PEER_IDS_LENGTH]
    sharedSecretEncryptions: SharedSecretEncryptions

event ConfigSet:
    previousConfigBlockNumber: uint32
    configCount: uint64
    signers: DynArray[address, MAX_CONFIG_ADDRESSES]
    transmitters: DynArray[address, MAX_CONFIG_ADDRESSES]
    threshold: uint8
    encodedConfigVersion: uint64
    encoded: Bytes[MAX_ENCODED_LENGTH]

event NewTransmission:
    aggregatorRoundId: indexed(uint32)
    answer: int192
    transmitter: address
    observations: DynArray[int192, MAX_OBSERVATIONS]
    observers: Bytes[32]
    rawReportContext: bytes32

event AnswerUpdated:
    current: indexed(int256)
    roundId: indexed(uint256)
    updatedAt: uint256

event NewRound:
    roundId: indexed(uint256)
    startedBy: indexed(address)
    startedAt: uint256

event RoundRequested:
    requester: indexed(address)
    configDigest: bytes16
    epoch: uint32
    round: uint8

owner: public(address)
minAnswer: public(int192)
maxAnswer: public(int192)
decimals: public(uint8)
description: public(String[256])
version: public(constant(uint256)) = 4

# libocr's HotVars.
latestConfigDigest: bytes16
latestEpochAndRound: uint40
threshold: uint8
latestAggregatorRoundId: uint32

configCount: uint32
latestConfigBlockNumber: uint32
oracles: HashMap[address, Oracle]
signers: DynArray[address, MAX_NUM_ORACLES]
transmitterList: DynArray[address, MAX_NUM_ORACLES]
transmissions: HashMap[uint32, Transmission]

# Super Protocol variant: the last struct setConfig and the consensus parameters it is encoded
# with; setConsensusConfig re-applies the config when one was set this way.
spConfigured: bool
spArgs: SetConfigArgs
consensus: ConsensusParams


@deploy
def __init__(_minAnswer: int192, _maxAnswer: int192, _decimals: uint8, _description: String[256]):
    self.owner = msg.sender
    self.minAnswer = _minAnswer
    self.maxAnswer = _maxAnswer
    self.decimals = _decimals
    self.description = _description


@internal
@pure
def _bytes16_at(word: uint256, low_bit: uint256) -> bytes16:
    """The 16 bytes of `word` that start `low_bit` bits above its low end."""
    low: uint256 = (word >> low_bit) & convert(max_value(uint128), uint256)
    return convert(convert(low, uint128), bytes16)


@internal
@pure
def _epoch(_epochAndRound: uint40) -> uint32:
    return convert(convert(_epochAndRound, uint256) >> 8, uint32)


@internal
@pure
def _round(_epochAndRound: uint40) -> uint8:
    return convert(convert(_epochAndRound, uint256) & 255, uint8)


@internal
@pure
def _byte_at(word: bytes32, i: uint256) -> uint256:
    """Byte i of a bytes32, counting from the left (Solidity's `word[i]`)."""
    return (convert(word, uint256) >> (248 - 8 * i)) & 255


@internal
@pure
def _check_config_valid(_numSigners: uint256, _numTransmitters: uint256, _threshold: uint8):
    """libocr's checkConfigValid modifier."""
    assert _numSigners <= MAX_NUM_ORACLES, "too many signers"
    assert _threshold > 0, "threshold must be positive"
    assert _numSigners == _numTransmitters, "oracle addresses out of registration"
    assert _numSigners > 3 * convert(_threshold, uint256), "faulty-oracle threshold too high"


@internal
def _set_config(
    _signers: DynArray[address, MAX_CONFIG_ADDRESSES],
    _transmitters: DynArray[address, MAX_CONFIG_ADDRESSES],
    _threshold: uint8,
    _encodedConfigVersion: uint64,
    _encoded: Bytes[MAX_ENCODED_LENGTH],
):
    self._check_config_valid(len(_signers), len(_transmitters), _threshold)
    for old: address in self.signers:
        self.oracles[old] = empty(Oracle)
    for old: address in self.transmitterList:
        self.oracles[old] = empty(Oracle)
    self.signers = []
    self.transmitterList = []
    for i: uint256 in range(len(_signers), bound=MAX_NUM_ORACLES):
        assert self.oracles[_signers[i]].role == ROLE_UNSET, "repeated signer address"
        self.oracles[_signers[i]] = Oracle(index=convert(i, uint8), role=ROLE_SIGNER)
        assert self.oracles[_transmitters[i]].role == ROLE_UNSET, "repeated transmitter address"
        self.oracles[_transmitters[i]] = Oracle(index=convert(i, uint8), role=ROLE_TRANSMITTER)
        self.signers.append(_signers[i])
        self.transmitterList.append(_transmitters[i])

    self.threshold = _threshold
    previous: uint32 = self.latestConfigBlockNumber
    self.latestConfigBlockNumber = convert(block.number, uint32)
    self.configCount += 1
    count: uint64 = convert(self.configCount, uint64)
    digest: bytes32 = keccak256(
        abi_encode(
            self, count, _signers, _transmitters, _threshold, _encodedConfigVersion, _encoded
        )
    )
    self.latestConfigDigest = self._bytes16_at(convert(digest, uint256), 128)
    self.latestEpochAndRound = 0
    log ConfigSet(
        previousConfigBlockNumber=previous,
        configCount=count,
        signers=_signers,
        transmitters=_transmitters,
        threshold=_threshold,
        encodedConfigVersion=_encodedConfigVersion,
        encoded=_encoded,
    )


@internal
def _set_sp_config():
    """Applies the stored Super Protocol config with `encoded` built from the consensus params."""
    args: SetConfigArgs = self.spArgs
    params: ConsensusParams = self.consensus
    encoded: Bytes[MAX_ENCODED_LENGTH] = abi_encode(
        ConsensusConfig(
            deltaProgress=params.deltaProgress,
            deltaResend=params.deltaResend,
            deltaRound=params.deltaRound,
            deltaGrace=params.deltaGrace,
            deltaC=params.deltaC,
            alphaPPB=params.alphaPPB,
            deltaStage=params.deltaStage,
            rMax=params.rMax,
            s=args.s,
            offchainPublicKeys=args.offchainPublicKeys,
            peerIDs=args.peerIDs,
            sharedSecretEncryptions=args.sharedSecretEncryptions,
        )
    )
    self._set_config(
        args.signers, args.transmitters, args.threshold, params.encodedConfigVersion, encoded
    )


@external
def setConfig(
    _signers: DynArray[address, MAX_CONFIG_ADDRESSES],
    _transmitters: DynArray[address, MAX_CONFIG_ADDRESSES],
    _threshold: uint8,
    _encodedConfigVersion: uint64,
    _encoded: Bytes[MAX_ENCODED_LENGTH],
):
    """Standard OCR1 setConfig (585aa7de)."""
    # Upstream's modifiers run checkConfigValid before onlyOwner.
    self._check_config_valid(len(_signers), len(_transmitters), _threshold)
    assert msg.sender == self.owner, "Only callable by owner"
    self.spConfigured = False
    self._set_config(_signers, _transmitters, _threshold, _encodedConfigVersion, _encoded)


@external
def setConsensusConfig(
    _deltaProgress: int64,
    _deltaResend: int64,
    _deltaRound: int64,
    _deltaGrace: int64,
    _deltaC: int64,
    _alphaPPB: uint64,
    _deltaStage: int64,
    _rMax: uint8,
    _encodedConfigVersion: uint64,
):
    """Super Protocol consensus parameters (67222871); re-applies a struct config if one is set."""
    assert msg.sender == self.owner, "Only callable by owner"
    self.consensus = ConsensusParams(
        deltaProgress=_deltaProgress,
        deltaResend=_deltaResend,
        deltaRound=_deltaRound,
        deltaGrace=_deltaGrace,
        deltaC=_deltaC,
        alphaPPB=_alphaPPB,
        deltaStage=_deltaStage,
        rMax=_rMax,
        encodedConfigVersion=_encodedConfigVersion,
    )
    if self.spConfigured:
        self._set_sp_config()


@external
def __default__():
    """
    Super Protocol `setConfig((address[],address[],uint8,uint8[],bytes32[],string,
    (bytes32,bytes32,bytes16[])))` (67dd81f0). Vyper has no overloading, so it is dispatched
    here; Vyper can only slice msg.data with a constant length, so the argument is copied word
    by word. Any other selector reverts without data, as a Solidity contract would.
    """
    assert len(msg.data) >= 4
    if convert(slice(msg.data, 0, 4), bytes4) != SP_SET_CONFIG:
        raise
    assert msg.sender == self.owner, "Only callable by owner"
    size: uint256 = len(msg.data) - 4
    assert size % 32 == 0
    words: DynArray[bytes32, MAX_SP_CALLDATA_WORDS] = []
    for i: uint256 in range(size // 32, bound=MAX_SP_CALLDATA_WORDS):
        words.append(convert(slice(msg.data, 4 + 32 * i, 32), bytes32))
    # abi_encode((words,)) = offset word, length word, then the words themselves.
    packed: Bytes[32 * MAX_SP_CALLDATA_WORDS + 64] = abi_encode(words)
    body: Bytes[32 * MAX_SP_CALLDATA_WORDS + 64] = slice(packed, 64, size)
    self.spArgs = abi_decode(body, SetConfigArgs)
    self.spConfigured = True
    self._set_sp_config()


@external
def transmit(
    _report: Bytes[MAX_REPORT_LENGTH],
    _rs: DynArray[bytes32, MAX_SIGNATURES],
    _ss: DynArray[bytes32, MAX_SIGNATURES],
    _rawVs: bytes32,
):
    """OCR1 transmit (c9807539): every check of libocr's, in its order, with its messages."""
    # selector, 3 offsets, rawVs, 3 lengths, then the report and the signatures, unpadded.
    expected: uint256 = 4 + 7 * 32 + len(_report) + 32 * len(_rs) + 32 * len(_ss)
    assert len(msg.data) == expected, "transmit message too long"

    context: bytes32 = empty(bytes32)
    raw_observers: bytes32 = empty(bytes32)
    observations: DynArray[int192, MAX_OBSERVATIONS] = []
    context, raw_observers, observations = abi_decode(
        _report, (bytes32, bytes32, DynArray[int192, MAX_OBSERVATIONS])
    )
    # context = 00 x 11 | configDigest (16) | epoch (uint32) | round (uint8)
    context_word: uint256 = convert(context, uint256)
    assert self._bytes16_at(context_word, 40) == self.latestConfigDigest, "configDigest mismatch"
    epoch_and_round: uint40 = convert(context_word & convert(max_value(uint40), uint256), uint40)
    assert self.latestEpochAndRound < epoch_and_round, "stale report"
    threshold: uint256 = convert(self.threshold, uint256)
    assert len(_rs) > threshold, "not enough signatures"
    assert len(_rs) <= MAX_NUM_ORACLES, "too many signatures"
    assert len(_ss) == len(_rs), "signatures out of registration"
    count: uint256 = len(observations)
    assert count <= MAX_NUM_ORACLES, "num observations out of bounds"
    assert count > 2 * threshold, "too few values to trust median"

    seen: uint256 = 0
    for i: uint256 in range(count, bound=MAX_NUM_ORACLES):
        observer: uint256 = self._byte_at(raw_observers, i)
        # Upstream indexes a bool[31] here: an index past it reverts without a message.
        assert observer < MAX_NUM_ORACLES
        assert seen & (1 << observer) == 0, "observer index repeated"
        seen |= 1 << observer

    transmitter: Oracle = self.oracles[msg.sender]
    authorized: bool = transmitter.role == ROLE_TRANSMITTER
    if authorized:
        authorized = self.transmitterList[convert(transmitter.index, uint256)] == msg.sender
    assert authorized, "unauthorized transmitter"

    digest: bytes32 = keccak256(_report)
    signed: uint256 = 0
    for i: uint256 in range(len(_rs), bound=MAX_NUM_ORACLES):
        signer: address = ecrecover(digest, self._byte_at(_rawVs, i) + 27, _rs[i], _ss[i])
        oracle: Oracle = self.oracles[signer]
        assert oracle.role == ROLE_SIGNER, "address not authorized to sign"
        bit: uint256 = 1 << convert(oracle.index, uint256)
        assert signed & bit == 0, "non-unique signature"
        signed |= bit

    for i: uint256 in range(count - 1, bound=MAX_NUM_ORACLES):
        assert observations[i] <= observations[i + 1], "observations not sorted"
    median: int192 = observations[count // 2]
    assert self.minAnswer <= median and median <= self.maxAnswer, "median is out of min-max range"

    round_id: uint32 = self.latestAggregatorRoundId + 1
    self.latestAggregatorRoundId = round_id
    self.latestEpochAndRound = epoch_and_round
    self.transmissions[round_id] = Transmission(
        answer=median, timestamp=convert(block.timestamp, uint64)
    )
    log NewTransmission(
        aggregatorRoundId=round_id,
        answer=median,
        transmitter=msg.sender,
        observations=observations,
        observers=slice(raw_observers, 0, count),
        rawReportContext=context,
    )
    log NewRound(
        roundId=convert(round_id, uint256), startedBy=empty(address), startedAt=block.timestamp
    )
    log AnswerUpdated(
        current=convert(median, int256),
        roundId=convert(round_id, uint256),
        updatedAt=block.timestamp,
    )


@external
def requestNewRound() -> uint80:
    assert msg.sender == self.owner, "Only owner&requester can call"
    log RoundRequested(
        requester=msg.sender,
        configDigest=self.latestConfigDigest,
        epoch=self._epoch(self.latestEpochAndRound),
        round=self._round(self.latestEpochAndRound),
    )
    return convert(self.latestAggregatorRoundId, uint80) + 1


@view
@external
def latestTransmissionDetails() -> (bytes16, uint32, uint8, int192, uint64):
    assert msg.sender == tx.origin, "Only callable by EOA"
    latest: Transmission = self.transmissions[self.latestAggregatorRoundId]
    return (
        self.latestConfigDigest,
        self._epoch(self.latestEpochAndRound),
        self._round(self.latestEpochAndRound),
        latest.answer,
        latest.timestamp,
    )


@view
@external
def latestConfigDetails() -> (uint32, uint32, bytes16):
    return (self.configCount, self.latestConfigBlockNumber, self.latestConfigDigest)


@view
@external
def transmitters() -> DynArray[address, MAX_NUM_ORACLES]:
    return self.transmitterList


@view
@external
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    """Never reverts: zeros before the first report."""
    round_id: uint32 = self.latestAggregatorRoundId
    latest: Transmission = self.transmissions[round_id]
    return (
        convert(round_id, uint80),
        convert(latest.answer, int256),
        convert(latest.timestamp, uint256),
        convert(latest.timestamp, uint256),
        convert(round_id, uint80),
    )


@view
@external
def getRoundData(_roundId: uint80) -> (uint80, int256, uint256, uint256, uint80):
    assert _roundId <= convert(max_value(uint32), uint80), "No data present"
    found: Transmission = self.transmissions[convert(_roundId, uint32)]
    return (
        _roundId,
        convert(found.answer, int256),
        convert(found.timestamp, uint256),
        convert(found.timestamp, uint256),
        _roundId,
    )


@view
@external
def latestAnswer() -> int256:
    return convert(self.transmissions[self.latestAggregatorRoundId].answer, int256)


@view
@external
def latestTimestamp() -> uint256:
    return convert(self.transmissions[self.latestAggregatorRoundId].timestamp, uint256)


@view
@external
def latestRound() -> uint256:
    return convert(self.latestAggregatorRoundId, uint256)


@view
@external
def getAnswer(_roundId: uint256) -> int256:
    if _roundId > convert(max_value(uint32), uint256):
        return 0
    return convert(self.transmissions[convert(_roundId, uint32)].answer, int256)


@view
@external
def getTimestamp(_roundId: uint256) -> uint256:
    if _roundId > convert(max_value(uint32), uint256):
        return 0
    return convert(self.transmissions[convert(_roundId, uint32)].timestamp, uint256)


@pure
@external
def typeAndVersion() -> String[64]:
    return "OffchainAggregator 4.0.0 (enclave tests)"

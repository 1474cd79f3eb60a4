package loadgen

// PollLoopsStarted counts the event loops started.
var PollLoopsStarted = &pollLoopsStarted

// LoopsHolding counts the processors event loops hold.
var LoopsHolding = &loopsHolding

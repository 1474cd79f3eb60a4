package loadgen

// PollLoopsStarted counts the event loops started.
var PollLoopsStarted = &pollLoopsStarted

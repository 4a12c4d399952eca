"""The JavaScript every sandbox runs once, before any expression: Sensu Go's filter functions,
the fatigue filter, and the entry points Python calls.

Functions and names a script could overwrite are defined read-only on the global object, and the
entry points keep their own references to ``JSON`` and ``eval``, so one expression cannot change
what the next one sees of them. Sources are never pasted into other code (one exception, the
mutator's function wrapper, is Sensu Go's own): they are run by indirect ``eval`` of a string.
"""

PRELUDE = r"""
(function (global) {
    "use strict";
    var parse = JSON.parse, stringify = JSON.stringify, evalGlobal = global.eval;
    var defineProperty = Object.defineProperty, hasOwn = Object.prototype.hasOwnProperty;
    var toString = Object.prototype.toString, floor = Math.floor, ceil = Math.ceil;
    var SYNTAX_PROBE = {};
    var now = 0;

    function define(name, value) {
        defineProperty(global, name, {value: value, writable: false, enumerable: false, configurable: false});
    }

    // Sensu Go's toInt64 (js/toint64.go): a number truncated toward zero, anything else 0.
    function int64(value) {
        if (typeof value !== "number" || value !== value || value === Infinity || value === -Infinity) {
            return 0;
        }
        return value < 0 ? ceil(value) : floor(value);
    }

    function modulo(a, n) {
        var r = a % n;
        return r < 0 ? r + n : r;
    }

    // Sensu Go's time functions (js/js.go addTimeFuncs): UTC; no argument at all gives 0.
    function timeFunction(of) {
        return function (ts) {
            return arguments.length === 0 ? 0 : of(int64(ts));
        };
    }
    define("second", timeFunction(function (t) { return modulo(t, 60); }));
    define("minute", timeFunction(function (t) { return floor(modulo(t, 3600) / 60); }));
    define("hour", timeFunction(function (t) { return floor(modulo(t, 86400) / 3600); }));
    // 1970-01-01 was a Thursday (4); Sunday is 0, as Go's time.Weekday.
    define("weekday", timeFunction(function (t) { return modulo(floor(t / 86400) + 4, 7); }));
    // time.Since(time.Unix(ts, 0)).Seconds(), with "now" given by the caller.
    define("seconds_since", timeFunction(function (t) { return now - t; }));

    // Otto, Sensu Go's engine, has a console; Sensu's assets call console.log on their error
    // paths (the fatigue-check-filter does, then returns false). Here it is there and writes nothing.
    var quiet = function () {};
    define("console", Object.freeze({log: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet,
                                     dir: quiet, time: quiet, timeEnd: quiet, trace: quiet, assert: quiet}));

    function annotation(annotations, key) {
        return annotations !== null && typeof annotations === "object" && hasOwn.call(annotations, key)
            ? annotations[key] : undefined;
    }

    // The fatigue filter of Sensu's fatigue-check-filter asset (lib/fatigue_check.js), built in:
    // the annotations of the check, then those of the entity, which take precedence.
    // In a context with runtime assets it may be replaced: a library defines its own (Sensu's
    // fatigue-check-filter asset declares "function fatigue_check"), and that one is used.
    var fatigueCheck = function (event, occurrences, interval, keepaliveOccurrences, keepaliveInterval) {
        occurrences = occurrences || 1;
        interval = interval || 1800;
        keepaliveOccurrences = keepaliveOccurrences || occurrences;
        keepaliveInterval = keepaliveInterval || interval;
        var allowResolution = true, suppressFlapping = true, value, i;
        var sources;
        try {
            sources = [event.check.annotations, event.entity.annotations];
        } catch (err) {
            return false;
        }
        for (i = 0; i < 2; i++) {
            var keepalive = i === 1;
            if ((value = annotation(sources[i], "fatigue_check/occurrences")) !== undefined) {
                occurrences = parseInt(value, 10);
            }
            if ((value = annotation(sources[i], "fatigue_check/interval")) !== undefined) {
                interval = parseInt(value, 10);
            }
            if (keepalive && (value = annotation(sources[i], "fatigue_check/keepalive_occurrences")) !== undefined) {
                keepaliveOccurrences = parseInt(value, 10);
            }
            if (keepalive && (value = annotation(sources[i], "fatigue_check/keepalive_interval")) !== undefined) {
                keepaliveInterval = parseInt(value, 10);
            }
            if ((value = annotation(sources[i], "fatigue_check/allow_resolution")) !== undefined) {
                allowResolution = !(/false/i).test(value);
            }
            if ((value = annotation(sources[i], "fatigue_check/suppress_flapping")) !== undefined) {
                suppressFlapping = !(/false/i).test(value);
            }
        }
        var check = event.check;
        if ((/flapping/i).test(check.state) && suppressFlapping) {
            return false;
        }
        if (event.is_resolution) {
            // only a resolution of an incident that was let through
            return allowResolution && check.occurrences_watermark >= occurrences;
        }
        var isKeepalive = check.name == "keepalive";
        if (isKeepalive && check.occurrences == keepaliveOccurrences) {
            return true;
        }
        if (!isKeepalive && check.occurrences === occurrences) {
            return true;
        }
        var checkInterval = 60;  // a cron check without history: the asset's default
        if (check.interval > 0) {
            checkInterval = check.interval;
        } else if (check.interval === 0 && check.cron && check.cron.length > 0 && !!check.history
                   && check.history.length > 1) {
            checkInterval = event.timestamp - check.history[check.history.length - 2].executed;
        }
        if (isKeepalive) {
            return check.occurrences > keepaliveOccurrences
                && check.occurrences % ceil(keepaliveInterval / checkInterval) === 0;
        }
        return check.occurrences > occurrences && check.occurrences % ceil(interval / checkInterval) === 0;
    };
    if (global.__pipeline_libraries__ === true) {
        delete global.__pipeline_libraries__;
        global.fatigue_check = fatigueCheck;
    } else {
        define("fatigue_check", fatigueCheck);
    }

    define("__syntax_probe__", SYNTAX_PROBE);

    // "" when source parses as a program, else the SyntaxError. The probe is thrown before the
    // first statement of source runs, so none of it is executed.
    define("__pipeline_syntax__", function (source) {
        try {
            evalGlobal("throw __syntax_probe__;\n" + source);
        } catch (err) {
            return err === SYNTAX_PROBE ? "" : String(err);
        }
        return "no probe";
    });

    // Sensu Go's filter: the program's completion value, as JavaScript truthiness (otto's ToBoolean).
    define("__pipeline_filter__", function (source, eventJson, nowSeconds) {
        now = nowSeconds;
        global.event = parse(eventJson);
        try {
            return !!evalGlobal(source);
        } finally {
            global.event = undefined;
        }
    });

    // A predicate over another object than an event: proxy_requests' ``entity``, an asset's
    // filters' ``entity``; the object is the global ``name`` while the program runs.
    define("__pipeline_predicate__", function (source, name, json) {
        global[name] = parse(json);
        try {
            return !!evalGlobal(source);
        } finally {
            global[name] = undefined;
        }
    });

    var META = ["name", "namespace", "labels", "annotations", "created_by"];

    // event.check.labels as well as event.check.metadata.labels, both writable, neither in the JSON.
    function alias(object) {
        if (object === null || typeof object !== "object") {
            return;
        }
        if (object.metadata === null || typeof object.metadata !== "object") {
            object.metadata = {};
        }
        var meta = object.metadata;
        if (!meta.labels) { meta.labels = {}; }
        if (!meta.annotations) { meta.annotations = {}; }
        defineProperty(meta, "toJSON", {value: metadataJSON, writable: true, enumerable: false, configurable: true});
        META.forEach(function (key) {
            if (!hasOwn.call(object, key)) {
                defineProperty(object, key, {
                    get: function () { return object.metadata[key]; },
                    set: function (value) { object.metadata[key] = value; },
                    enumerable: false, configurable: true
                });
            }
        });
    }

    // Go's omitempty: an empty labels or annotations map (as the guard above makes) is left out of
    // the JSON, whether the mutator's result or the script's own JSON.stringify(event)
    function metadataJSON() {
        var out = {}, meta = this;
        Object.keys(meta).forEach(function (key) {
            var value = meta[key];
            var emptyMap = (key === "labels" || key === "annotations") && value !== null
                && typeof value === "object" && Object.keys(value).length === 0;
            if (!emptyMap) { out[key] = value; }
        });
        return out;
    }

    // Sensu Go 6's javascript mutator: "ok:" and the output, or "bad:" and the class of a result
    // that is neither a string, undefined nor null.
    define("__pipeline_mutate__", function (wrapped, eventJson, envJson) {
        var event = parse(eventJson), env = parse(envJson), names = Object.keys(env), result;
        alias(event);
        alias(event.check);
        alias(event.entity);
        global.event = event;
        names.forEach(function (name) { try { global[name] = env[name]; } catch (err) { /* read-only */ } });
        try {
            result = evalGlobal(wrapped);
        } finally {
            global.event = undefined;
            names.forEach(function (name) { try { delete global[name]; } catch (err) { /* read-only */ } });
        }
        if (result === undefined || result === null) {
            return "ok:" + stringify(event);
        }
        if (typeof result === "string") {
            return "ok:" + result;
        }
        return "bad:" + toString.call(result).slice(8, -1);
    });
}(this));
"""

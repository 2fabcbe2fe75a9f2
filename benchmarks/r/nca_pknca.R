# PKNCA on the same study as `ctk nca` (benchmarks/bench_nca.py writes the input and times
# this script as a command: Rscript nca_pknca.R STUDY_DIR OUT_DIR).
# Same work as `ctk nca` with its defaults: lin-up/log-down, PKNCA's BLQ rule, the whole-profile
# parameters plus AUC0-28 and AUC0-84 (aucint.last), the three quality exclusions, the long
# result and a summary written as CSV. Prints the seconds spent in pk.nca() alone (elapsed, CPU).
suppressMessages({library(PKNCA); library(dplyr)})
args <- commandArgs(trailingOnly = TRUE)
study <- args[1]; out <- args[2]
obs <- read.csv(file.path(study, "observations.csv"), stringsAsFactors = FALSE)
subj <- read.csv(file.path(study, "subjects.csv"), stringsAsFactors = FALSE)
obs <- obs[obs$time >= 0, ]                       # the pre-infusion sample (a structural zero)
obs$conc <- suppressWarnings(as.numeric(ifelse(obs$value == "BLQ", "0", obs$value)))
first <- obs %>% group_by(subject) %>% summarise(t0 = min(time))
zero <- data.frame(subject = first$subject[first$t0 > 0], time = 0, conc = 0)  # C(0) = 0
conc <- rbind(obs[, c("subject", "time", "conc")], zero)
conc <- conc[order(conc$subject, conc$time), ]
doses <- data.frame(subject = subj$subject, dose = subj$dose, time = 0)
params <- c("cmax", "tmax", "clast.obs", "tlast", "auclast", "aucall", "half.life", "lambda.z",
            "r.squared", "adj.r.squared", "lambda.z.n.points", "lambda.z.time.first",
            "lambda.z.time.last", "span.ratio", "aucinf.obs", "aucpext.obs")
whole <- data.frame(start = 0, end = Inf)
for (p in params) whole[[p]] <- TRUE
intervals <- bind_rows(whole, data.frame(start = 0, end = c(28, 84), aucint.last = TRUE))
intervals[is.na(intervals)] <- FALSE
d <- PKNCAdata(PKNCAconc(conc, conc ~ time | subject), PKNCAdose(doses, dose ~ time | subject),
               intervals = intervals, options = list(auc.method = "lin up/log down"))
t0 <- proc.time()
res <- suppressWarnings(suppressMessages(pk.nca(d)))
t_nca <- proc.time() - t0
for (f in list(exclude_nca_min.hl.adj.r.squared(0.9), exclude_nca_span.ratio(),
               exclude_nca_max.aucinf.pext())) res <- exclude(res, FUN = f)
dir.create(out, showWarnings = FALSE)
write.csv(as.data.frame(res), file.path(out, "pknca_long.csv"), row.names = FALSE)
write.csv(as.data.frame(summary(res)), file.path(out, "pknca_summary.csv"), row.names = FALSE)
cat(sprintf("pk.nca_seconds %.3f cpu %.3f\n", t_nca[["elapsed"]], t_nca[["user.self"]] + t_nca[["sys.self"]]))

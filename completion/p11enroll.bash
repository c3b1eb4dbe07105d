# bash completion for p11enroll.  The candidates come from the program:
# `p11enroll help --complete` lists the commands, `p11enroll help
# --complete COMMAND` the options COMMAND takes (each with its argument's
# name), `p11enroll check-config --names` the enrollments.  Standalone:
# compgen and complete only, no bash-completion helpers.

_p11enroll()
{
	local cur prev prog cmd i w conf="" user="" opts line
	local -a words
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=""
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	prog=${COMP_WORDS[0]}
	COMPREPLY=()

	# the command word and the configuration file given so far
	cmd=""
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		-c | --config) conf=${COMP_WORDS[i + 1]}; ((i++)); continue ;;
		--config=*) conf=${w#--config=}; continue ;;
		--user) user=--user; continue ;;
		-*) # an option's argument is no command
			if [[ -n $cmd ]] && "$prog" help --complete "$cmd" 2> /dev/null |
				grep -q -x -e "$w [A-Z]*"; then
				((i++))
			elif [[ -z $cmd ]] && "$prog" help --complete help 2> /dev/null |
				grep -q -x -e "$w [A-Z]*"; then
				((i++))
			fi
			continue ;;
		esac
		[[ -z $cmd ]] && cmd=$w
	done

	# the argument of the option before
	if [[ $prev == -* ]]; then
		line=$("$prog" help --complete "${cmd:-help}" 2> /dev/null |
			grep -x -e "$prev [A-Z]*")
		[[ $prev == -c ]] && line="-c FILE"
		if [[ -n $line ]]; then
			case ${line##* } in
			FILE | MODULE | PROG) COMPREPLY=($(compgen -f -- "$cur")) ;;
			DIR) COMPREPLY=($(compgen -d -- "$cur")) ;;
			esac
			return 0
		fi
	fi

	if [[ $cur == -* ]]; then
		opts=$("$prog" help --complete "${cmd:-help}" 2> /dev/null | sed 's/ .*//')
		[[ -z $cmd ]] && opts="$opts -c -v -q -h -V"
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		return 0
	fi
	if [[ -z $cmd ]]; then
		COMPREPLY=($(compgen -W "$("$prog" help --complete 2> /dev/null)" -- "$cur"))
		return 0
	fi
	case $cmd in
	help)
		COMPREPLY=($(compgen -W "$("$prog" help --complete 2> /dev/null)" -- "$cur")) ;;
	agent | check-config) ;;
	*)
		COMPREPLY=($(compgen -W "$("$prog" $user ${conf:+-c "$conf"} check-config \
			--names 2> /dev/null)" -- "$cur")) ;;
	esac
	return 0
}
complete -F _p11enroll p11enroll
